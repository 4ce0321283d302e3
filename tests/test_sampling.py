"""Sampling records each completion's log-probability from the logits it was drawn from; KL then reuses it instead
of a second forward pass of the policy. Both must give the number a teacher-forced forward pass gives."""

from __future__ import annotations

import copy

import pytest
import torch

from prefdisco.models import load_causal_lm, load_tokenizer
from prefdisco.sampling import completion_logps, sample_completions, sampled_kl
from prefdisco.shared_layers import shared_bottom_layers

# Prompts of different lengths: left padding in generation, right padding in the forward pass.
PROMPTS = ["The film", "I watched this movie last night and", "Plot:", "An utterly forgettable sequel that"]


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    # EOS made likely, so that some completions stop early and the cut at EOS is exercised too.
    eos = tokenizer.eos_token_id
    model.lm_head.register_forward_hook(lambda module, args, out: out.index_add(
        -1, torch.tensor([eos]), torch.full((*out.shape[:-1], 1), 9.0)))
    return model, tokenizer


def test_recorded_logps_equal_a_forward_pass(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    completions = sample_completions(model, tokenizer, PROMPTS, samples_per_prompt=3, max_new_tokens=6, seed=0,
                                     batch_size=5)
    lengths = {len(c.completion_ids) for c in completions}
    assert min(lengths) < 6 and max(lengths) == 6  # some stopped at EOS, some ran to the limit

    recorded = torch.tensor([c.logp for c in completions])
    forward = completion_logps(model, completions, tokenizer.pad_token_id, batch_size=7)
    assert torch.allclose(recorded, forward, atol=1e-4), (recorded - forward).abs().max()


def test_kl_from_recorded_logps_equals_kl_from_two_forward_passes(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    reference = copy.deepcopy(model)
    with torch.no_grad():
        reference.model.norm.weight.mul_(1.3)  # a different distribution
    completions = sample_completions(model, tokenizer, PROMPTS, 2, 5, seed=1, batch_size=8)
    fast = sampled_kl(model, reference, tokenizer, completions, batch_size=8)
    for c in completions:
        c.logp = None  # what a completion sampled under another distribution carries
    slow = sampled_kl(model, reference, tokenizer, completions, batch_size=8)
    assert max(abs(a - b) for a, b in zip(fast, slow)) < 1e-4
    assert max(abs(v) for v in slow) > 0.01  # the two models differ on these samples


@pytest.mark.parametrize("batch_size", [4, 10])
def test_samples_sharing_a_prefill_continue_as_if_each_had_its_own(model_and_tokenizer, tiny_model_dir, batch_size):
    """Greedy (top-k 1), a prompt's samples are its one continuation: two samples of each prompt from one shared
    prefill must equal one sample of each prompt listed twice, for prompts of different lengths (left padding; a
    one-token prompt has nothing but padding in the shared prefill), and come back in prompt order."""
    _, tokenizer = model_and_tokenizer
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))  # without the EOS boost: continuations run on
    prompts = [*PROMPTS, "Wow"]
    shared = sample_completions(model, tokenizer, prompts, 2, 6, seed=0, top_k=1, batch_size=batch_size)
    separate = sample_completions(model, tokenizer, [p for p in prompts for _ in range(2)], 1, 6, seed=0, top_k=1,
                                  batch_size=3)
    assert [c.prompt_index for c in shared] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert [c.prompt for c in shared] == [c.prompt for c in separate]
    assert [c.prompt_ids for c in shared] == [c.prompt_ids for c in separate]
    assert [c.completion_ids for c in shared] == [c.completion_ids for c in separate]
    assert min(len(c.prompt_ids) for c in shared) == 1 and max(len(c.completion_ids) for c in shared) == 6


def test_no_log_probability_is_recorded_for_a_tempered_or_truncated_distribution(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    for options in ({"temperature": 0.7}, {"top_k": 5}):
        completions = sample_completions(model, tokenizer, PROMPTS[:2], 1, 3, seed=0, **options)
        assert all(c.logp is None for c in completions)


def top_layer_policy(model):
    """The model with its top decoder layer changed: what training.trainable_layers: 1 produces."""
    policy = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in policy.model.layers[-1].parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return policy


def test_kl_through_the_shared_bottom_layers_equals_kl_from_whole_forward_passes(model_and_tokenizer):
    reference, tokenizer = model_and_tokenizer
    policy = top_layer_policy(reference)
    shared = shared_bottom_layers(policy, reference)
    assert shared == len(reference.model.layers) - 1

    completions = sample_completions(policy, tokenizer, PROMPTS, 2, 6, seed=2, batch_size=3, keep_hidden_at=shared)
    assert all(c.hidden is not None and c.hidden.shape[0] == len(c.prompt_ids) + len(c.completion_ids) - 1
               for c in completions)
    fast = sampled_kl(policy, reference, tokenizer, completions, batch_size=5)
    for c in completions:
        c.hidden, c.logp = None, None
    slow = sampled_kl(policy, reference, tokenizer, completions, batch_size=5)
    assert max(abs(a - b) for a, b in zip(fast, slow)) < 1e-4
    assert max(abs(v) for v in slow) > 0.01


def test_models_that_share_no_bottom_layer_or_are_the_same_are_not_cut(model_and_tokenizer):
    reference, _ = model_and_tokenizer
    assert shared_bottom_layers(reference, reference) == 0
    assert shared_bottom_layers(copy.deepcopy(reference), reference) == 0  # all layers equal: nothing to cut
    assert shared_bottom_layers(top_layer_policy(reference), None) == 0
    changed_embeddings = top_layer_policy(reference)
    with torch.no_grad():
        changed_embeddings.model.embed_tokens.weight[0].add_(1.0)
    assert shared_bottom_layers(changed_embeddings, reference) == 0
