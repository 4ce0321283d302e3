"""Sampling completions and scoring their log-probabilities, batched; shared by every task."""

from __future__ import annotations

import inspect
import math
import statistics
from dataclasses import dataclass

import torch

from .shared_layers import HiddenStateRecorder, shared_bottom_layers, top_layers_logps


@dataclass
class Completion:
    prompt_index: int
    prompt: str
    prompt_ids: list[int]
    completion_ids: list[int]  # up to and including the first EOS, if one was generated
    text: str  # the decoded completion, special tokens removed
    # log model(completion | prompt) from the logits the sample was drawn from; None where the sampling distribution
    # was not the model's own (temperature != 1 or top-k truncation)
    logp: float | None = None
    # the hidden state entering decoder layer ``hidden_layer`` at every position before the last token, kept when
    # sampling was asked to (see shared_layers): the reference's log-probability then needs only its top layers
    hidden: torch.Tensor | None = None
    hidden_layer: int = 0


def encode_prompts(tokenizer, prompts: list[str], rendered_chat: bool):
    """A batch of prompts as padded tensors, the one way every stage that generates tokenises them.

    A prompt rendered by a chat template already holds every special token the model expects, BOS included where
    the template emits one (zephyr-7b-gemma's does): the tokenizer must add none, or BOS comes twice. TRL
    tokenises conversational training pairs the same way. Plain-text prompts get the tokenizer's own special tokens.
    """
    return tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=not rendered_chat)


@torch.no_grad()
def sample_completions(
    model,
    tokenizer,
    prompts: list[str],
    samples_per_prompt: int,
    max_new_tokens: int,
    seed: int,
    temperature: float = 1.0,
    top_k: int = 0,
    batch_size: int = 32,
    rendered_chat: bool = False,
    keep_hidden_at: int = 0,
) -> list[Completion]:
    """Sample ``samples_per_prompt`` completions of every prompt, in prompt order.

    Prompts of like length share a batch, so left padding costs little, and the samples of one prompt share its
    prefill (computed once, copied to each sample): with short completions the prompt is much of the compute.
    A batch holds ``batch_size // samples_per_prompt`` prompts (at least one) and is seeded from ``seed`` and its
    index. The batches depend only on the prompts, the tokenizer and these arguments, so every model sampled
    with them gets the same ones: evaluations of different policies are paired draw by draw (common random numbers).
    ``rendered_chat``: the prompts were rendered by the model's chat template (see :func:`encode_prompts`).
    Sampled at temperature 1 without truncation, each completion also carries its log-probability under the model,
    read from the logits it was drawn from: scoring KL then needs no second forward pass of the policy.
    ``keep_hidden_at`` > 0 keeps each completion's hidden states entering that decoder layer (for
    :func:`sampled_kl`, from :func:`prefdisco.shared_layers.shared_bottom_layers`).
    """
    model.eval()
    device = next(model.parameters()).device
    own_distribution = temperature == 1.0 and not top_k  # logits processors then leave the distribution unchanged
    lengths = encode_prompts(tokenizer, prompts, rendered_chat)["attention_mask"].sum(dim=1).tolist() if prompts else []
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])  # stable: ties keep the prompts' order
    prompts_per_batch = max(1, batch_size // samples_per_prompt)
    completions: list[Completion] = []
    for batch_index, start in enumerate(range(0, len(order), prompts_per_batch)):
        indices = order[start : start + prompts_per_batch]
        encoded = encode_prompts(tokenizer, [prompts[i] for i in indices], rendered_chat).to(device)
        torch.manual_seed(seed * 1_000_003 + batch_index)
        recorder = HiddenStateRecorder(model, keep_hidden_at) if keep_hidden_at else None
        try:
            output = _generate(model, encoded, samples_per_prompt, do_sample=True, temperature=temperature,
                               top_k=top_k, top_p=1.0, max_new_tokens=max_new_tokens,
                               pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                               return_dict_in_generate=True, output_logits=own_distribution)
        finally:
            if recorder is not None:
                recorder.close()
        width = encoded["input_ids"].shape[1]
        hidden = recorder.joined().cpu() if recorder is not None else None
        if hidden is not None and hidden.shape[1] != output.sequences.shape[1] - 1:
            hidden = None  # not one position per step (generation without a KV cache): KL takes the whole pass
        new_tokens = output.sequences[:, width:]
        token_logps = _generated_token_logps(output.logits, new_tokens) if own_distribution else None
        ids, masks = encoded["input_ids"].tolist(), encoded["attention_mask"].tolist()
        for row in range(len(output.sequences)):
            prompt_row = row // samples_per_prompt
            prompt_index = indices[prompt_row]
            prompt_ids = [t for t, m in zip(ids[prompt_row], masks[prompt_row]) if m]
            completion_ids = _cut_at_eos(new_tokens[row].tolist(), tokenizer.eos_token_id)
            text = tokenizer.decode(completion_ids, skip_special_tokens=True)
            logp = None if token_logps is None else float(token_logps[row, : len(completion_ids)].sum())
            completion = Completion(prompt_index, prompts[prompt_index], prompt_ids, completion_ids, text, logp)
            if hidden is not None:  # left-padded prompt, then one position per generated token but the last
                completion.hidden = hidden[row, width - len(prompt_ids) : width + len(completion_ids) - 1].clone()
                completion.hidden_layer = keep_hidden_at
            completions.append(completion)
    completions.sort(key=lambda c: c.prompt_index)  # stable: a prompt's samples keep their order
    return completions


def _generate(model, encoded, samples_per_prompt: int, **generate_options):
    """``model.generate`` of ``samples_per_prompt`` samples of each row of ``encoded`` (consecutive rows of the
    output). Several samples of a prompt share one prefill of all its tokens but the last: its key-value cache is
    copied to each sample, and generation starts from the last prompt token, with the position ids generate itself
    gives left-padded rows."""
    input_ids, attention = encoded["input_ids"], encoded["attention_mask"]
    if samples_per_prompt == 1 or input_ids.shape[1] < 2:
        return model.generate(input_ids=input_ids, attention_mask=attention, **generate_options)
    positions = (attention.long().cumsum(-1) - 1).masked_fill(attention == 0, 1)
    prefill = model(input_ids=input_ids[:, :-1], attention_mask=attention[:, :-1], position_ids=positions[:, :-1],
                    use_cache=True, logits_to_keep=1)
    # transformers 5.x names it `cache` (`past_key_values` is deprecated); 4.x knows only the old name.
    cache_argument = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    cache = getattr(prefill, cache_argument)
    cache.batch_repeat_interleave(samples_per_prompt)
    return model.generate(input_ids=input_ids.repeat_interleave(samples_per_prompt, dim=0),
                          attention_mask=attention.repeat_interleave(samples_per_prompt, dim=0),
                          **{cache_argument: cache}, **generate_options)


def _generated_token_logps(step_logits: tuple[torch.Tensor, ...], new_tokens: torch.Tensor) -> torch.Tensor:
    """(B, steps) log-probabilities of the generated tokens under the raw logits of each step."""
    logps = [torch.log_softmax(logits.float(), dim=-1).gather(-1, new_tokens[:, step, None]).squeeze(-1)
             for step, logits in enumerate(step_logits)]
    return torch.stack(logps, dim=1).cpu()


@torch.no_grad()
def completion_logps(model, completions: list[Completion], pad_token_id: int, batch_size: int = 32) -> torch.Tensor:
    """Sum of log-probabilities of each completion's tokens given its prompt, shape (N,)."""
    model.eval()
    device = next(model.parameters()).device
    sums = []
    for start in range(0, len(completions), batch_size):
        batch = completions[start : start + batch_size]
        sequences = [c.prompt_ids + c.completion_ids for c in batch]
        width = max(len(s) for s in sequences)
        # Right padding keeps positions identical to the unpadded sequence for absolute-position models too.
        input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        completion_mask = torch.zeros((len(batch), width), dtype=torch.bool)
        for row, (c, s) in enumerate(zip(batch, sequences)):
            input_ids[row, : len(s)] = torch.tensor(s)
            attention[row, : len(s)] = 1
            completion_mask[row, len(c.prompt_ids) : len(s)] = True
        input_ids, attention, completion_mask = input_ids.to(device), attention.to(device), completion_mask.to(device)
        logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
        targets = input_ids[:, 1:]
        token_logps = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        sums.append((token_logps * completion_mask[:, 1:]).sum(dim=1).cpu())
    return torch.cat(sums) if sums else torch.zeros(0)


def sampled_kl(policy, reference, tokenizer, completions: list[Completion], batch_size: int) -> list[float]:
    """Per completion, log policy(y|x) - log reference(y|x): with y sampled from the policy at temperature 1 and no
    truncation, its mean is an unbiased estimate of KL(policy || reference). ``reference=None``: zeros.

    The policy's term is the one recorded at sampling time where every completion has it (the same number a forward
    pass gives, without paying for that pass); only the reference is run again.
    """
    if reference is None:
        return [0.0] * len(completions)
    if all(c.logp is not None for c in completions):
        policy_logps = torch.tensor([c.logp for c in completions])
    else:
        policy_logps = completion_logps(policy, completions, tokenizer.pad_token_id, batch_size)
    layer = completions[0].hidden_layer if completions else 0
    if layer and all(c.hidden is not None and c.hidden_layer == layer for c in completions) \
            and layer <= shared_bottom_layers(policy, reference):
        reference_logps = torch.cat([
            top_layers_logps(reference, layer, [c.hidden for c in batch], [len(c.prompt_ids) for c in batch],
                             [c.completion_ids for c in batch])
            for batch in (completions[i : i + batch_size] for i in range(0, len(completions), batch_size))])
    else:
        reference_logps = completion_logps(reference, completions, tokenizer.pad_token_id, batch_size)
    return (policy_logps - reference_logps).tolist()


def mean_and_sem_by_prompt(completions: list[Completion], values: list[float]) -> tuple[float, float]:
    """Mean over prompts of each prompt's mean, and its standard error across prompts (samples of one prompt are
    not independent draws of the task)."""
    per_prompt: dict[int, list[float]] = {}
    for completion, value in zip(completions, values):
        per_prompt.setdefault(completion.prompt_index, []).append(value)
    means = [statistics.fmean(v) for v in per_prompt.values()]
    if len(means) < 2:
        return (means[0] if means else math.nan), math.nan
    return statistics.fmean(means), statistics.stdev(means) / math.sqrt(len(means))


def _cut_at_eos(tokens: list[int], eos_token_id: int | None) -> list[int]:
    if eos_token_id is not None and eos_token_id in tokens:
        return tokens[: tokens.index(eos_token_id) + 1]
    return tokens
