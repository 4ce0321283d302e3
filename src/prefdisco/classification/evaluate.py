"""Stage: score a trained classifier. Fitness is validation accuracy; test accuracy is reported, never selected on.

    python -m prefdisco.classification.evaluate --train-record train.json --model model.pt --data data.pt \\
        [--threads N] [--gpus N] --output eval.json

Each accuracy carries a 95% Wilson interval over the images of its split (one trained model: the interval is over
examples, not seeds; the transfer stage gives intervals over seeds). ``metrics.per_example`` keeps the validation
correctness in order, so runs can be compared example by example.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path

import torch

from prefdisco.classification.models import build_model
from prefdisco.classification.train import accuracy
from prefdisco.cli import setup_logging
from prefdisco.devices import assign_gpus
from prefdisco.io import read_json, write_json
from prefdisco.models import resolve_device, set_threads

log = logging.getLogger(__name__)

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sensible at 0 and 1, unlike the normal one)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def score(model: torch.nn.Module, data: dict, device: torch.device) -> dict:
    metrics: dict = {}
    for split in ("val", "test"):
        correct = accuracy(model, data[f"{split}_x"], data[f"{split}_y"], device)
        low, high = wilson_interval(sum(correct), len(correct))
        metrics.update({f"{split}_accuracy": sum(correct) / len(correct), f"{split}_ci_low": low,
                        f"{split}_ci_high": high, f"n_{split}": len(correct)})
        if split == "val":
            metrics["per_example"] = {"val_correct": correct}
    metrics["interval_method"] = "wilson95_over_examples"
    return metrics


def evaluate_unit(record: dict, state_path: Path, data: dict, device_name: str = "auto") -> dict:
    started = time.monotonic()
    result = {"id": record["id"], "status": record["status"], "fitness": None, "metrics": {},
              "error": record.get("error")}
    if record["status"] != "ok":
        return {**result, "wall_seconds": 0.0}
    options = record["options"]
    device = resolve_device(device_name)
    model = build_model(options["model"], data["classes"], data["train_x"].shape[1])
    model.load_state_dict(torch.load(state_path))
    model.to(device)
    metrics = score(model, data, device)
    return {**result, "fitness": metrics["val_accuracy"], "metrics": metrics,
            "wall_seconds": time.monotonic() - started}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-record", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gpus", type=int, default=None)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    assign_gpus(args.gpus)
    set_threads(args.threads)
    record = read_json(args.train_record)
    result = evaluate_unit(record, args.model, torch.load(args.data), args.device)
    write_json(args.output, result)
    metrics = result["metrics"]
    if metrics:
        log.info("%s: validation accuracy %.4f [%.4f, %.4f], test accuracy %.4f", result["id"],
                 metrics["val_accuracy"], metrics["val_ci_low"], metrics["val_ci_high"], metrics["test_accuracy"])
    else:
        log.info("%s: %s (%s)", result["id"], result["status"], result["error"])


if __name__ == "__main__":
    main()
