"""Benchmark: a candidate's training with shared precomputed reference log-probs against a stock TRL
DPOTrainer that runs a live reference model, same model, data, steps and seed, measured side by side.

    python benchmarks/bench_training.py [--steps 6] [--repeats 2] [--trainable-layers N]

Target (issue 2): ours at most 0.8x the stock run (ideal about 0.75: the reference forward is a quarter of the
work of a full fine-tune step). Runs alternate (ours, stock, ours, stock ...) so drift in machine load hits both;
the median of each is compared. The reference log-probs are computed once beforehand, as in the workflow, and
their one-off cost is printed separately.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from datasets import Dataset
from trl import DPOTrainer

from prefdisco.models import load_causal_lm, load_tokenizer, resolve_device, set_threads
from prefdisco.objectives import library_source
from prefdisco.stages.reference import provide_reference
from prefdisco.sandbox.worker import ObjectiveWorker
from prefdisco.tasks.sentiment import bundled_prompts
from prefdisco.trainer import TrainingOptions, attach_reference_logps, compute_reference_logps, dpo_config, train_objective

TARGET = 0.8


def synthetic_pairs(n: int) -> list[dict]:
    """Preference pairs of realistic length (the default task's prompts and ~20-token completions)."""
    chosen = " and it turned out to be a warm, funny and moving story that stayed with me for days afterwards."
    rejected = " and it turned out to be a slow, muddled story that I forgot the moment the credits started."
    return [{"pair_id": f"p{i}", "prompt": p, "chosen": chosen, "rejected": rejected}
            for i, p in enumerate(bundled_prompts()[:n])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a transformers folder (default: convert SmolLM2 once)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--trainable-layers", type=int, default=None, help="default: full fine-tune")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    set_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="prefdisco-bench-training-"))
    model_dir = args.model or provide_reference("smollm2", scratch / "reference")["path"]
    device = resolve_device("auto")
    options = TrainingOptions(beta=0.1, learning_rate=1e-5, batch_size=args.batch_size, max_steps=args.steps,
                              seed=0, max_length=128, trainable_layers=args.trainable_layers, device=device.type,
                              precision="fp32", lr_scheduler="constant")
    pairs = synthetic_pairs(args.steps * args.batch_size)
    tokenizer = load_tokenizer(model_dir)

    started = time.monotonic()
    reference_logps = compute_reference_logps(load_causal_lm(model_dir, device), tokenizer, pairs, options, scratch / "ref")
    precompute_s = time.monotonic() - started
    dataset = attach_reference_logps(pairs, reference_logps)
    plain = Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs])

    def ours() -> tuple[float, float]:
        model = load_causal_lm(model_dir, device)
        started = time.monotonic()
        with ObjectiveWorker(library_source("dpo")) as dpo:  # as in the workflow: the objective in its worker
            _, history = train_objective(model, tokenizer, dataset, dpo, options, scratch / "ours")
        return time.monotonic() - started, history[-1]["train_runtime"]

    def stock() -> tuple[float, float]:
        from prefdisco.trainer import freeze_below_top_layers

        model = load_causal_lm(model_dir, device)
        freeze_below_top_layers(model, options.trainable_layers)
        config = dpo_config(options, scratch / "stock")
        config.precompute_ref_log_probs = False
        tokenizer.padding_side = "right"
        started = time.monotonic()  # includes the reference model's load, which TRL does inside the trainer
        trainer = DPOTrainer(model=model, args=config, train_dataset=plain, processing_class=tokenizer)
        trainer.train()
        return time.monotonic() - started, trainer.state.log_history[-1]["train_runtime"]

    times: dict[str, list[tuple[float, float]]] = {"ours": [], "stock": []}
    for _ in range(args.repeats):
        times["ours"].append(ours())
        times["stock"].append(stock())
    ours_s, stock_s = (statistics.median(t for t, _ in times[k]) for k in ("ours", "stock"))
    ours_loop, stock_loop = (statistics.median(t for _, t in times[k]) for k in ("ours", "stock"))
    ratio = ours_s / stock_s
    scope = "full fine-tune" if args.trainable_layers is None else f"top {args.trainable_layers} layers"
    print(f"training benchmark: {args.steps} steps x {args.batch_size} pairs, {scope}, {device}, {args.threads} threads")
    print(f"  reference log-probs, once per run: {precompute_s:.1f} s")
    for name, label in (("ours", "ours (precomputed reference)"), ("stock", "stock TRL (live reference)")):
        runs = ", ".join(f"{t:.1f}" for t, _ in times[name])
        print(f"  {label:<32} whole training {runs} s; training loop alone (median) "
              f"{ours_loop if name == 'ours' else stock_loop:.1f} s")
    print(f"  training loop alone: ours / stock = {ours_loop / stock_loop:.2f}")
    print(f"  whole candidate training (trainer set-up included): ours / stock = {ratio:.2f} "
          f"(target <= {TARGET}) -> {'PASS' if ratio <= TARGET else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
