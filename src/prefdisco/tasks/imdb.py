"""The paper's IMDb positive-review task: continue a review's opening positively (DiscoPOP, section 5.2).

Preference pairs come from ZHZisZZ/imdb_preference (columns ``prompt``, ``chosen``, ``rejected``: the review
opening and two continuations) read with ``datasets``: the Hub dataset at a pinned revision, or a local JSON,
JSONL or parquet file (or folder) in the same schema. A trained policy samples continuations of the held-out
prompts (the test split); its reward is the probability of the positive label under a sentiment classifier
(siebert/sentiment-roberta-large-english through a transformers ``text-classification`` pipeline, or any local
classifier folder; ``vader`` is an offline scorer for CPU presets, its compound score mapped to [0, 1]). KL is
token-level, as the authors measured it: at every sampled token the full-vocabulary KL(policy || reference) of the
next-token distributions, averaged over the completion's tokens.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass

import torch

from ..options import options_from
from ..sampling import Completion, sample_completions
from .chat import load_splits

log = logging.getLogger(__name__)

IMDB_PREFERENCE = "ZHZisZZ/imdb_preference"
SIEBERT = "siebert/sentiment-roberta-large-english"
VADER = "vader"


@dataclass
class ImdbOptions:
    dataset: str = IMDB_PREFERENCE  # a Hub id, or a local file or folder in the same schema
    revision: str | None = None  # of a Hub dataset; ignored for a local path
    train_split: str = "train"
    heldout_split: str = "test"  # a single local file has only "train": its last heldout_prompts rows are held out
    max_pairs: int | None = None
    heldout_prompts: int | None = 256  # None: every held-out prompt
    reward_model: str = SIEBERT  # "vader", a local text-classification folder, or a Hub id
    reward_label: str = "POSITIVE"  # the label whose probability is the reward
    reward_batch_size: int = 64
    max_new_tokens: int = 60
    eval_samples_per_prompt: int = 1
    batch_size: int = 32


def to_options(raw: dict) -> ImdbOptions:
    return options_from(ImdbOptions, raw, "task.options (task 'imdb')")


def _text(value) -> str | None:
    """A completion as text: a string, or the content of the last message of a conversation."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return value[-1].get("content")
    return None


def build_pairs(splits: dict[str, list[dict]], options: ImdbOptions) -> tuple[list[dict], list[str]]:
    if options.train_split not in splits:
        raise ValueError(f"task.options.dataset {options.dataset}: no split {options.train_split!r} "
                         f"(splits: {sorted(splits)})")
    train_rows = splits[options.train_split]
    if options.heldout_split in splits:
        heldout_rows = splits[options.heldout_split]
    else:
        n = options.heldout_prompts or 0
        if not 0 < n < len(train_rows):
            raise ValueError(f"task.options.dataset {options.dataset}: one split of {len(train_rows)} rows needs "
                             f"task.options.heldout_prompts between 1 and {len(train_rows) - 1}")
        train_rows, heldout_rows = train_rows[:-n], train_rows[-n:]
    pairs = []
    for index, row in enumerate(train_rows):
        prompt, chosen, rejected = row.get("prompt"), _text(row.get("chosen")), _text(row.get("rejected"))
        if not isinstance(prompt, str) or chosen is None or rejected is None:
            raise ValueError(f"task.options.dataset {options.dataset}: row {index} of {options.train_split!r} lacks a "
                             "text 'prompt', 'chosen' or 'rejected'")
        if chosen != rejected:
            pairs.append({"pair_id": f"p{index:05d}", "prompt": prompt, "chosen": chosen, "rejected": rejected})
    if options.max_pairs is not None:
        pairs = pairs[: options.max_pairs]
    heldout = [row["prompt"] for row in heldout_rows]
    if options.heldout_prompts is not None:
        heldout = heldout[: options.heldout_prompts]
    return pairs, heldout


def build(model, tokenizer, options: ImdbOptions, seed: int) -> tuple[list[dict], list[str]]:
    """Stage entry: preference pairs and held-out prompts; the model is not needed."""
    return build_pairs(load_splits(options), options)


class RewardModel:
    """P(``label``) of each text: a transformers text-classification pipeline, or VADER offline."""

    def __init__(self, name: str, label: str, batch_size: int, device: torch.device):
        self.name, self.label, self.batch_size = name, label, batch_size
        if name == VADER:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            self.vader = SentimentIntensityAnalyzer()
            return
        from transformers import pipeline

        self.pipeline = pipeline("text-classification", model=name, top_k=None, truncation=True,
                                 device=device)
        labels = set(self.pipeline.model.config.id2label.values())
        if label not in labels:
            raise ValueError(f"task.options.reward_label {label!r} is not a label of {name} (labels: {sorted(labels)})")

    def __call__(self, texts: list[str]) -> list[float]:
        if self.name == VADER:  # compound in [-1, 1] -> [0, 1], a probability-like reward as the classifier's
            return [(self.vader.polarity_scores(t)["compound"] + 1) / 2 for t in texts]
        scores = self.pipeline(texts, batch_size=self.batch_size)
        return [next(s["score"] for s in row if s["label"] == self.label) for row in scores]


@torch.no_grad()
def token_level_kl(policy, reference, completions: list[Completion], pad_token_id: int, batch_size: int) -> list[float]:
    """Per completion: the mean over its sampled tokens of KL(policy(.|prefix) || reference(.|prefix))."""
    if reference is None:
        return [0.0] * len(completions)
    device = next(policy.parameters()).device
    values: list[float] = []
    for start in range(0, len(completions), batch_size):
        batch = completions[start : start + batch_size]
        sequences = [c.prompt_ids + c.completion_ids for c in batch]
        width = max(len(s) for s in sequences)
        input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.bool)
        for row, (c, s) in enumerate(zip(batch, sequences)):
            input_ids[row, : len(s)] = torch.tensor(s)
            attention[row, : len(s)] = 1
            mask[row, len(c.prompt_ids) : len(s)] = True
        input_ids, attention, mask = input_ids.to(device), attention.to(device), mask.to(device)
        policy_logp = torch.log_softmax(policy(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float(), -1)
        reference_logp = torch.log_softmax(reference(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float(), -1)
        per_token = (policy_logp.exp() * (policy_logp - reference_logp)).sum(-1)  # predicts token t+1
        predicted = mask[:, 1:]
        counts = predicted.sum(1).clamp(min=1)
        values += ((per_token * predicted).sum(1) / counts).cpu().tolist()
    return values


def score(policy, reference, tokenizer, heldout: list[str], options: ImdbOptions, seed: int) -> dict:
    """Stage entry: mean P(positive) of the policy's own samples on the held-out prompts, and token-level KL."""
    completions = sample_completions(policy, tokenizer, heldout, options.eval_samples_per_prompt,
                                     options.max_new_tokens, seed=seed, temperature=1.0, top_k=0,
                                     batch_size=options.batch_size)
    device = next(policy.parameters()).device
    rewards = RewardModel(options.reward_model, options.reward_label, options.reward_batch_size, device)(
        [c.prompt + c.text for c in completions])
    kls = token_level_kl(policy, reference, completions, tokenizer.pad_token_id, options.batch_size)
    per_prompt = {"reward": _per_prompt(completions, rewards, len(heldout)),
                  "kl": _per_prompt(completions, kls, len(heldout))}
    return {"reward": statistics.fmean(per_prompt["reward"]), "reward_sem": _sem(per_prompt["reward"]),
            "kl": statistics.fmean(per_prompt["kl"]), "kl_sem": _sem(per_prompt["kl"]), "kl_kind": "token-level",
            "reward_model": options.reward_model, "n_prompts": len(heldout), "n_samples": len(completions),
            "per_prompt": per_prompt,
            "mean_completion_tokens": statistics.fmean(len(c.completion_ids) for c in completions),
            "examples": [{"prompt": c.prompt, "completion": c.text, "reward": r}
                         for c, r in list(zip(completions, rewards))[:8]]}


def _per_prompt(completions: list[Completion], values: list[float], n_prompts: int) -> list[float]:
    """One value per held-out prompt, in held-out order: the mean over that prompt's samples."""
    sums, counts = [0.0] * n_prompts, [0] * n_prompts
    for completion, value in zip(completions, values):
        sums[completion.prompt_index] += value
        counts[completion.prompt_index] += 1
    return [s / c for s, c in zip(sums, counts)]


def _sem(values: list[float]) -> float:
    return statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
