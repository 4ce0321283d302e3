"""A policy that trains only its top layers starts each training step from the states its frozen bottom layers
compute, recorded once by the reference pass: the same log-probs, the same gradients, the same trained weights as
whole forward passes, and the bottom layers never run in training."""

from __future__ import annotations

import torch
from test_training import PAIRS, options

from prefdisco.models import load_causal_lm, load_tokenizer
from prefdisco.objectives import library_source
from prefdisco.sandbox.worker import ObjectiveWorker
from prefdisco.shared_layers import FrozenStates
from prefdisco.trainer import attach_reference_logps, compute_reference_logps, train_objective


def train(model_dir, dataset, opts, scratch, states):
    model = load_causal_lm(model_dir, torch.device("cpu"))
    bottom_calls = []
    model.model.layers[0].register_forward_hook(lambda *args: bottom_calls.append(1))
    with ObjectiveWorker(library_source("lrml")) as worker:
        trainer, history = train_objective(model, load_tokenizer(model_dir), dataset, worker, opts, scratch, states)
    return model, trainer, history, len(bottom_calls)


def test_training_from_frozen_states_equals_training_from_whole_forward_passes(tiny_model_dir, tmp_path):
    opts = options(trainable_layers=1, max_steps=3, eval_pairs=4, eval_steps=1)  # held-out pairs scored too
    reference = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    states = FrozenStates.for_top_layers(reference, opts.trainable_layers)
    records = compute_reference_logps(reference, load_tokenizer(tiny_model_dir), PAIRS, opts, tmp_path / "ref", states)
    assert states.layer == 1 and len(states.by_sequence) == 2 * len(PAIRS)
    states.save(tmp_path / "states.pt")
    dataset = attach_reference_logps(PAIRS, records)

    whole, _, whole_history, whole_bottom_calls = train(tiny_model_dir, dataset, opts, tmp_path / "a", None)
    cut, trainer, cut_history, cut_bottom_calls = train(tiny_model_dir, dataset, opts, tmp_path / "b",
                                                        FrozenStates.load(tmp_path / "states.pt"))
    assert trainer.frozen_steps == 3 and cut_bottom_calls == 0 and whole_bottom_calls == 3 + 3  # steps, evaluations
    losses = [(a["loss"], b["loss"]) for a, b in zip(whole_history, cut_history) if "loss" in a]
    assert len(losses) == 3 and all(abs(a - b) < 1e-5 for a, b in losses)
    eval_losses = [(a["eval_loss"], b["eval_loss"]) for a, b in zip(whole_history, cut_history) if "eval_loss" in a]
    assert len(eval_losses) == 3 and all(abs(a - b) < 1e-5 for a, b in eval_losses)
    trained = [name for name, p in whole.named_parameters() if p.requires_grad]
    assert trained and all(name.startswith(("model.layers.1.", "model.norm.")) for name in trained)
    before = dict(reference.named_parameters())
    for (name, a), (_, b) in zip(whole.named_parameters(), cut.named_parameters()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert any(not torch.equal(dict(whole.named_parameters())[n], before[n]) for n in trained)  # it did train


def test_states_are_not_used_where_they_do_not_fit(tiny_model_dir, tmp_path):
    reference = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    assert FrozenStates.for_top_layers(reference, None).skipped == "the whole model trains"
    opts = options(trainable_layers=1, max_steps=2)
    states = FrozenStates.for_top_layers(reference, 1)
    records = compute_reference_logps(reference, load_tokenizer(tiny_model_dir), PAIRS, opts, tmp_path / "ref", states)
    dataset = attach_reference_logps(PAIRS, records)
    # A candidate that trains both layers (a training override) cannot start above its first one.
    _, trainer, _, bottom_calls = train(tiny_model_dir, dataset, options(trainable_layers=2, max_steps=2),
                                        tmp_path / "a", states)
    assert trainer.frozen_steps == 0 and bottom_calls == 2
    # A sequence the states do not hold (other data) takes the whole forward pass.
    states.by_sequence.pop(next(iter(states.by_sequence)))
    _, trainer, _, bottom_calls = train(tiny_model_dir, dataset, opts, tmp_path / "b", states)
    assert trainer.frozen_steps + bottom_calls == 2 and bottom_calls >= 1
