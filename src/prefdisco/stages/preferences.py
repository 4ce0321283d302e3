"""Stage: the task's preference pairs and held-out prompts, built once per run from the reference.

A pair whose prompt alone reaches training.max_length tokens is dropped here, once: truncation would leave it no
completion token to train on, and TRL's trainer would drop it on its own in every job. Dropping it where the
dataset is built gives the reference log-probs and every training job the same pairs; preferences.json
records how many went.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..cli import json_option, setup_logging
from ..devices import assign_gpus
from ..io import write_json, write_jsonl
from ..models import load_for_inference, load_tokenizer, prompt_token_count, set_threads, reference_path
from ..tasks import get_task

log = logging.getLogger(__name__)


def drop_long_prompts(pairs: list[dict], tokenizer, max_length: int) -> tuple[list[dict], list[str]]:
    """(kept pairs, ids of the dropped ones): a pair is dropped when its prompt has >= max_length tokens."""
    kept, dropped = [], []
    for pair in pairs:
        if prompt_token_count(tokenizer, pair["prompt"]) >= max_length:
            dropped.append(pair["pair_id"])
        else:
            kept.append(pair)
    return kept, dropped


def build_preferences(task_name: str, task_options: dict, model_dir: Path, seed: int, max_length: int,
                      device: str = "auto", precision: str = "auto") -> tuple[list[dict], list, dict]:
    """(pairs, held-out prompts, record): the task's data, less the pairs training could not use."""
    task = get_task(task_name)
    options = task.to_options(task_options)
    model = load_for_inference(model_dir, device, precision)
    tokenizer = load_tokenizer(model_dir)
    built, heldout = task.build(model, tokenizer, options, seed)
    pairs, dropped = drop_long_prompts(built, tokenizer, max_length)
    if dropped:
        log.warning("%d of %d preference pairs dropped: the prompt alone has >= training.max_length=%d tokens (%s)",
                    len(dropped), len(built), max_length, ", ".join(dropped[:5]) + (" ..." if len(dropped) > 5 else ""))
    if not pairs:
        raise RuntimeError(f"task {task_name}: no preference pairs were built"
                           + (f" ({len(built)} built, every prompt >= training.max_length={max_length} tokens)"
                              if built else "; check the task options"))
    record = {"task": task_name, "built_pairs": len(built), "pairs": len(pairs), "max_length": max_length,
              "dropped_long_prompt": len(dropped), "dropped_pair_ids": dropped, "heldout_prompts": len(heldout)}
    return pairs, heldout, record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--options", type=json_option, default={}, help="task options (JSON)")
    parser.add_argument("--reference", type=Path, required=True, help="reference.json of the reference stage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, required=True, help="training.max_length (tokens)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="training.precision: auto, fp32, bf16 or fp16")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gpus", type=int, default=None, help="GPUs of this job, its own (resources.gpu)")
    parser.add_argument("--pairs", type=Path, required=True, help="output: preference pairs (JSONL)")
    parser.add_argument("--heldout", type=Path, required=True, help="output: held-out prompts (JSON)")
    parser.add_argument("--record", type=Path, required=True, help="output: counts of built and dropped pairs (JSON)")
    args = parser.parse_args(argv)
    setup_logging()
    assign_gpus(args.gpus)
    set_threads(args.threads)

    pairs, heldout, record = build_preferences(args.task, args.options, reference_path(args.reference), args.seed,
                                               args.max_length, args.device, args.precision)
    write_jsonl(args.pairs, pairs)
    write_json(args.heldout, heldout)
    write_json(args.record, record)
    log.info("%d preference pairs (%d dropped for long prompts), %d held-out prompts", len(pairs),
             record["dropped_long_prompt"], len(heldout))


if __name__ == "__main__":
    main()
