"""The paper's discovery task: chat preference data (argilla/dpo-mix-7k), scored on MT-Bench by an LLM judge.

Preference data is read with ``datasets``: the Hub dataset at a pinned revision, or a local JSON, JSONL or parquet
file (or a folder of them) in the same schema, one conversation per row: ``chosen`` and ``rejected`` are lists of
``{"role", "content"}`` messages that share every message but the last. A pair is the shared conversation as the
prompt and the two last assistant messages; TRL applies the model's chat template.

A policy's MT-Bench score (its fitness, as in the paper) comes from the judging stages (answers, then FastChat's
single-answer grading by the configured judge) and is merged by the evaluation stage; :func:`score` adds
KL(policy || reference), estimated from the policy's own samples on held-out conversations (the test split, or
the last rows of a single local file), so that the reward-vs-KL view exists for chat too.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..options import options_from
from ..shared_layers import shared_bottom_layers
from ..sampling import mean_and_sem_by_prompt, sample_completions, sampled_kl
from ..statistics import per_prompt_means

log = logging.getLogger(__name__)

DPO_MIX_7K = "argilla/dpo-mix-7k"
# The commit that gave the dataset its clean columns (dataset, chosen, rejected, chosen_rating, rejected_rating).
DPO_MIX_7K_REVISION = "84adebaeda61308ff57f2a3d14404ee0b5d5bbef"


@dataclass
class ChatOptions:
    dataset: str = DPO_MIX_7K  # a Hub id, or a local file or folder in the same schema
    revision: str | None = DPO_MIX_7K_REVISION  # of a Hub dataset; ignored for a local path
    train_split: str = "train"
    heldout_split: str = "test"  # a single local file has only "train": its last heldout_prompts rows are held out
    max_pairs: int | None = None  # the first N usable pairs (None: all)
    heldout_prompts: int = 32  # conversations for the KL estimate
    max_new_tokens: int = 128  # of each KL sample
    eval_samples_per_prompt: int = 1
    batch_size: int = 8


def to_options(raw: dict) -> ChatOptions:
    return options_from(ChatOptions, raw, "task.options (task 'chat')")


def load_splits(options: ChatOptions) -> dict[str, list[dict]]:
    """The dataset's splits as lists of rows: the Hub dataset at its revision, or local files."""
    import datasets

    path = Path(options.dataset)
    if path.exists():
        if path.is_dir():
            loaded = datasets.load_dataset(str(path))
        else:
            builder = "parquet" if path.suffix == ".parquet" else "json"
            loaded = datasets.load_dataset(builder, data_files={"train": str(path)})
    else:
        loaded = datasets.load_dataset(options.dataset, revision=options.revision)
    return {name: split.to_list() for name, split in loaded.items()}


def to_pair(row: dict, index: int) -> dict | None:
    """A TRL conversational preference pair from one row, or None when the row cannot make one."""
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if not (isinstance(chosen, list) and isinstance(rejected, list) and len(chosen) >= 2 and len(rejected) >= 2):
        return None
    prompt = chosen[:-1]
    if rejected[:-1] != prompt or chosen[-1].get("role") != "assistant" or rejected[-1].get("role") != "assistant":
        return None
    if chosen[-1]["content"] == rejected[-1]["content"]:
        return None
    return {"pair_id": f"p{index:05d}", "prompt": prompt, "chosen": [chosen[-1]], "rejected": [rejected[-1]],
            "chosen_rating": row.get("chosen_rating"), "rejected_rating": row.get("rejected_rating"),
            "source": row.get("dataset")}


def build_pairs(splits: dict[str, list[dict]], options: ChatOptions) -> tuple[list[dict], list[list[dict]]]:
    if options.train_split not in splits:
        raise ValueError(f"task.options.dataset {options.dataset}: no split {options.train_split!r} "
                         f"(splits: {sorted(splits)})")
    train_rows = splits[options.train_split]
    if options.heldout_split in splits:
        heldout_rows = splits[options.heldout_split]
    else:  # one local file: its last rows are held out, never trained on
        if len(train_rows) <= options.heldout_prompts:
            raise ValueError(f"task.options.dataset {options.dataset}: {len(train_rows)} rows cannot hold out "
                             f"{options.heldout_prompts} and still train")
        train_rows, heldout_rows = train_rows[: -options.heldout_prompts], train_rows[-options.heldout_prompts :]
    pairs = [p for p in (to_pair(row, i) for i, row in enumerate(train_rows)) if p is not None]
    skipped = len(train_rows) - len(pairs)
    if skipped:
        log.warning("%d of %d rows make no preference pair (unequal prompts, no assistant reply, equal replies)",
                    skipped, len(train_rows))
    if options.max_pairs is not None:
        pairs = pairs[: options.max_pairs]
    heldout = [p["prompt"] for p in (to_pair(row, i) for i, row in enumerate(heldout_rows)) if p is not None]
    return pairs, heldout[: options.heldout_prompts]


def build(model, tokenizer, options: ChatOptions, seed: int) -> tuple[list[dict], list[list[dict]]]:
    """Stage entry: preference pairs (conversational) and held-out conversations; the model is not needed."""
    return build_pairs(load_splits(options), options)


def score(policy, reference, tokenizer, heldout: list[list[dict]], options: ChatOptions, seed: int) -> dict:
    """Stage entry: KL(policy || reference) on held-out conversations; the reward is MT-Bench's, merged later."""
    prompts = [tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
               for messages in heldout]
    completions = sample_completions(policy, tokenizer, prompts, options.eval_samples_per_prompt,
                                     options.max_new_tokens, seed=seed, temperature=1.0, top_k=0,
                                     batch_size=options.batch_size, rendered_chat=True,
                                     keep_hidden_at=shared_bottom_layers(policy, reference))
    kls = sampled_kl(policy, reference, tokenizer, completions, options.batch_size)
    kl, kl_sem = mean_and_sem_by_prompt(completions, kls)
    per_prompt = {"kl": per_prompt_means([c.prompt_index for c in completions], kls, len(heldout))}
    return {"kl": kl, "kl_sem": kl_sem, "n_prompts": len(heldout), "n_samples": len(completions),
            "per_prompt": per_prompt,
            "mean_completion_tokens": statistics.fmean(len(c.completion_ids) for c in completions) if completions else 0.0}
