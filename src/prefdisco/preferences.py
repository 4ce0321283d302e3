"""Stage: the task's preference pairs and held-out prompts, built once per run from the reference."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .cli import json_option, setup_logging
from .devices import assign_gpus
from .io import write_json, write_jsonl
from .models import load_for_inference, load_tokenizer, set_threads
from .reference import reference_path
from .tasks import get_task

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", required=True)
    parser.add_argument("--options", type=json_option, default={}, help="task options (JSON)")
    parser.add_argument("--reference", type=Path, required=True, help="reference.json of the reference stage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="training.precision: auto, fp32, bf16 or fp16")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gpus", type=int, default=None, help="GPUs of this job, its own (resources.gpu)")
    parser.add_argument("--pairs", type=Path, required=True, help="output: preference pairs (JSONL)")
    parser.add_argument("--heldout", type=Path, required=True, help="output: held-out prompts (JSON)")
    args = parser.parse_args(argv)
    setup_logging()
    assign_gpus(args.gpus)
    set_threads(args.threads)

    task = get_task(args.task)
    options = task.to_options(args.options)
    model_dir = reference_path(args.reference)
    model = load_for_inference(model_dir, args.device, args.precision)
    tokenizer = load_tokenizer(model_dir)
    pairs, heldout = task.build(model, tokenizer, options, args.seed)
    if not pairs:
        raise RuntimeError(f"task {args.task}: no preference pairs were built; check the task options")
    write_jsonl(args.pairs, pairs)
    write_json(args.heldout, heldout)
    log.info("%d preference pairs, %d held-out prompts", len(pairs), len(heldout))


if __name__ == "__main__":
    main()
