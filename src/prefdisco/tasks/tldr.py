"""The paper's TL;DR summarization task (DiscoPOP, section 5.1): summarize a Reddit post in a few words.

Preference pairs come from CarperAI/openai_summarize_comparisons (columns ``prompt``: the post with its subreddit
and title; ``chosen`` and ``rejected``: two summaries, each starting "TL;DR:") read with ``datasets``, the first
``train_fraction`` of the train split as in the authors' recipe (train[:10%]). The policy sees the post: its prompt
is one user message, the post followed by "TL;DR:" (the authors' script passed the literal string
"example['prompt']" instead, so their policies never saw the post; see README). The held-out posts are every
``heldout_every``-th of the first ``heldout_fraction`` of the test split, with the human-written summary that the
judge compares a policy's summary with. :func:`score` gives KL(policy || reference) from the policy's own samples;
the win rates come from :mod:`prefdisco.judging.tldr`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from ..options import options_from
from ..shared_layers import shared_bottom_layers
from ..sampling import mean_and_sem_by_prompt, sample_completions, sampled_kl
from .chat import load_splits

SUMMARIZE_COMPARISONS = "CarperAI/openai_summarize_comparisons"
SUMMARY_CUE = "TL;DR:"
JUDGED_SEPARATELY = True  # no reward here: the tldr target judges the summaries (win rates)


@dataclass
class TldrOptions:
    dataset: str = SUMMARIZE_COMPARISONS  # a Hub id, or a local file or folder in the same schema
    revision: str | None = None
    train_split: str = "train"
    train_fraction: float = 0.1  # the recipe's train[:10%]
    heldout_split: str = "test"  # a single local file has only "train": its last rows are held out
    heldout_fraction: float = 0.05  # of the held-out split, as the authors' test[:5%]
    heldout_every: int = 6  # every 6th of those, as the authors' evaluation set
    heldout_prompts: int | None = None  # at most this many (None: all)
    max_pairs: int | None = None
    max_new_tokens: int = 128  # of each KL sample
    eval_samples_per_prompt: int = 1
    batch_size: int = 8


def to_options(raw: dict) -> TldrOptions:
    return options_from(TldrOptions, raw, "task.options (task 'tldr')")


def summary_request(post: str) -> list[dict]:
    """The policy's prompt: the post itself, then the summary cue."""
    return [{"role": "user", "content": f"{post.strip()}\n\n{SUMMARY_CUE}"}]


def strip_cue(summary: str) -> str:
    summary = summary.strip()
    return summary[len(SUMMARY_CUE):].strip() if summary.startswith(SUMMARY_CUE) else summary


def _head(rows: list[dict], fraction: float) -> list[dict]:
    return rows[: max(1, int(len(rows) * fraction))]


def build_pairs(splits: dict[str, list[dict]], options: TldrOptions) -> tuple[list[dict], list[dict]]:
    if options.train_split not in splits:
        raise ValueError(f"task.options.dataset {options.dataset}: no split {options.train_split!r} "
                         f"(splits: {sorted(splits)})")
    train_rows = splits[options.train_split]
    if options.heldout_split in splits:
        train_rows, heldout_rows = _head(train_rows, options.train_fraction), _head(splits[options.heldout_split], options.heldout_fraction)
    else:  # one local file: its last rows are held out, never trained on
        cut = len(train_rows) - max(1, int(len(train_rows) * options.heldout_fraction))
        train_rows, heldout_rows = _head(train_rows[:cut], options.train_fraction), train_rows[cut:]
    pairs = []
    for index, row in enumerate(train_rows):
        post, chosen, rejected = row.get("prompt"), row.get("chosen"), row.get("rejected")
        if not all(isinstance(v, str) and v.strip() for v in (post, chosen, rejected)):
            raise ValueError(f"task.options.dataset {options.dataset}: row {index} lacks a text 'prompt', 'chosen' "
                             "or 'rejected'")
        if strip_cue(chosen) != strip_cue(rejected):
            pairs.append({"pair_id": f"p{index:05d}", "prompt": summary_request(post),
                          "chosen": [{"role": "assistant", "content": strip_cue(chosen)}],
                          "rejected": [{"role": "assistant", "content": strip_cue(rejected)}]})
    if options.max_pairs is not None:
        pairs = pairs[: options.max_pairs]
    heldout = [{"post": row["prompt"].strip(), "prompt": summary_request(row["prompt"]), "human": strip_cue(row["chosen"])}
               for row in heldout_rows[:: options.heldout_every]]
    if options.heldout_prompts is not None:
        heldout = heldout[: options.heldout_prompts]
    return pairs, heldout


def build(model, tokenizer, options: TldrOptions, seed: int) -> tuple[list[dict], list[dict]]:
    """Stage entry: conversational pairs and held-out posts with their human summaries; no model needed."""
    return build_pairs(load_splits(options), options)


def score(policy, reference, tokenizer, heldout: list[dict], options: TldrOptions, seed: int) -> dict:
    """Stage entry: KL(policy || reference) on the held-out posts; the win rates come from the judge."""
    prompts = [tokenizer.apply_chat_template(h["prompt"], tokenize=False, add_generation_prompt=True) for h in heldout]
    completions = sample_completions(policy, tokenizer, prompts, options.eval_samples_per_prompt,
                                     options.max_new_tokens, seed=seed, temperature=1.0, top_k=0,
                                     batch_size=options.batch_size,
                                     keep_hidden_at=shared_bottom_layers(policy, reference))
    kls = sampled_kl(policy, reference, tokenizer, completions, options.batch_size)
    kl, kl_sem = mean_and_sem_by_prompt(completions, kls)
    return {"kl": kl, "kl_sem": kl_sem, "n_prompts": len(heldout), "n_samples": len(completions),
            "mean_completion_tokens": statistics.fmean(len(c.completion_ids) for c in completions) if completions else 0.0}
