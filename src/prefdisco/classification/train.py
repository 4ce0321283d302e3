"""Stage: train a classifier with one classification objective (a discovery candidate, or a transfer unit).

    python -m prefdisco.classification.train --objective objective.json --data data.pt --training '{...}' \\
        [--sandbox '{...}'] [--threads N] [--gpus N] --model-out model.pt --output train.json

The objective runs in the confined objective worker that serves preference objectives too
(:mod:`prefdisco.sandbox.worker`), under the limits of the config's ``sandbox`` section per call; this process
applies its gradients through the surrogate ``sum(grad * logits)``. Writes ``train.json`` (status, metrics,
per-epoch history, timings) and the trained weights. A failure of the candidate's own code is a result
(``train_failed``); anything else fails the job.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from prefdisco.classification.models import MODELS, build_model
from prefdisco.cli import json_option, setup_logging
from prefdisco.devices import assign_gpus
from prefdisco.errors import CandidateError
from prefdisco.io import read_json, write_json
from prefdisco.models import resolve_device, set_threads
from prefdisco.sandbox.runner import SandboxLimits
from prefdisco.sandbox.worker import ObjectiveWorker

log = logging.getLogger(__name__)


@dataclass
class ClassifierOptions:
    """How a classifier is trained (config section ``classification.training``)."""

    model: str = "mlp"  # one of models.MODELS
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 0.05
    optimizer: str = "sgd"  # sgd (momentum, nesterov) or adam
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "cosine"  # cosine (to zero over the run) or constant
    augment: bool = False  # random crop (padding 4) and horizontal flip: CIFAR-10, never digits
    seed: int = 0  # initial weights and data order
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"classification.training.model: {self.model!r} is not one of {', '.join(MODELS)}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"classification.training.optimizer: {self.optimizer!r} is not sgd or adam")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"classification.training.lr_schedule: {self.lr_schedule!r} is not cosine or constant")


def options_from_dict(values: dict) -> ClassifierOptions:
    known = {f.name for f in fields(ClassifierOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"classification.training: unknown option(s) {unknown}")
    return ClassifierOptions(**values)


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
             batch_size: int = 512) -> list[int]:
    """Per-example correctness (1 or 0) of ``model`` on (x, y), in order."""
    model.eval()
    correct: list[int] = []
    with torch.no_grad():
        for start in range(0, len(y), batch_size):
            logits = model(x[start:start + batch_size].to(device))
            correct += (logits.argmax(dim=-1).cpu() == y[start:start + batch_size]).int().tolist()
    return correct


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 32x32 crops of the 4-padded images and random horizontal flips (the usual CIFAR augmentation)."""
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    out = torch.empty_like(x)
    offsets = torch.randint(0, 9, (len(x), 2), generator=generator)
    flips = torch.rand(len(x), generator=generator) < 0.5
    for i, ((dy, dx), flip) in enumerate(zip(offsets.tolist(), flips.tolist())):
        crop = padded[i, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]
        out[i] = crop.flip(-1) if flip else crop
    return out


def train_classifier(code: str, data: dict, options: ClassifierOptions,
                     limits: SandboxLimits = SandboxLimits()) -> tuple[torch.nn.Module, list[dict]]:
    """Train a fresh ``options.model`` on data's train split with the objective ``code``, served by a confined
    worker under ``limits`` per call; the per-epoch history.

    Raises CandidateError when the objective fails (its error, a malformed or non-finite result, its limits).
    """
    # The worker starts first, so it imports and confines itself while the model is built.
    with ObjectiveWorker(code, limits, family="classification") as worker:
        device = resolve_device(options.device)
        torch.manual_seed(options.seed)
        model = build_model(options.model, data["classes"], data["train_x"].shape[1]).to(device)
        if options.optimizer == "sgd":
            optimizer = torch.optim.SGD(model.parameters(), lr=options.learning_rate, momentum=options.momentum,
                                        weight_decay=options.weight_decay, nesterov=options.momentum > 0)
        else:
            optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
        steps_per_epoch = math.ceil(len(data["train_y"]) / options.batch_size)
        total = steps_per_epoch * options.epochs
        schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total) if options.lr_schedule == "cosine"
                    else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0))
        generator = torch.Generator().manual_seed(options.seed)
        history = []
        for epoch in range(options.epochs):
            model.train()
            order = torch.randperm(len(data["train_y"]), generator=generator)
            loss_sum, seen = 0.0, 0
            for start in range(0, len(order), options.batch_size):
                index = order[start:start + options.batch_size]
                x, y = data["train_x"][index], data["train_y"][index]
                if options.augment:
                    x = _augment(x, generator)
                logits = model(x.to(device))
                losses, grads = worker.evaluate_classification(logits, y)
                optimizer.zero_grad(set_to_none=True)
                # d/dtheta sum(grad * logits) = d(mean loss)/dtheta: the candidate's gradient, applied here.
                (grads * logits).sum().backward()
                optimizer.step()
                schedule.step()
                loss_sum += float(losses.sum())
                seen += len(y)
            val = accuracy(model, data["val_x"], data["val_y"], device)
            history.append({"epoch": epoch + 1, "train_loss": loss_sum / seen, "val_accuracy": sum(val) / len(val),
                            "learning_rate": schedule.get_last_lr()[0]})
            log.info("epoch %d: train loss %.4f, validation accuracy %.4f", epoch + 1, loss_sum / seen,
                     sum(val) / len(val))
    return model, history


def run_training(spec: dict, data: dict, options: ClassifierOptions, model_out: Path,
                 limits: SandboxLimits = SandboxLimits()) -> dict:
    """Train one unit, its objective served by a confined worker under ``limits`` per call; its training record."""
    options = replace(options, **spec.get("training_overrides", {}))
    # The device is named after training, from the trained model's parameters.
    record = {"id": spec["id"], "status": "ok", "error": None, "device": options.device,
              "options": asdict(options), "metrics": {}, "history": []}
    started = time.monotonic()
    try:
        model, history = train_classifier(spec["code"], data, options, limits)
    except CandidateError as error:
        log.warning("candidate %s failed in training: %s", spec["id"], error)
        record.update(status="train_failed", error=str(error))
        model_out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({}, model_out)  # the output exists, so the failure is cached like a success
    else:
        record["device"] = str(next(model.parameters()).device)
        record["history"] = history
        record["metrics"] = {"train_loss": history[-1]["train_loss"], "val_accuracy": history[-1]["val_accuracy"]}
        model_out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, model_out)
    record["wall_seconds"] = time.monotonic() - started
    record["device_seconds"] = record["wall_seconds"] if record["device"].startswith("cuda") else 0.0
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", type=Path, required=True, help="objective.json of the unit")
    parser.add_argument("--data", type=Path, required=True, help="the split written by classification.data")
    parser.add_argument("--training", type=json_option, default={}, help="classification.training (JSON)")
    parser.add_argument("--sandbox", type=json_option, default={}, help="limits of one objective call in the worker "
                        "(JSON: the config's sandbox section, cpu_seconds, memory_mb, wall_seconds)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gpus", type=int, default=None, help="GPUs of this job, its own (resources.gpu)")
    parser.add_argument("--model-out", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="train.json")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        options = options_from_dict(args.training)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    assign_gpus(args.gpus)
    set_threads(args.threads)
    spec = read_json(args.objective)
    record = run_training(spec, torch.load(args.data), options, args.model_out, SandboxLimits(**args.sandbox))
    write_json(args.output, record)
    log.info("candidate %s: %s (%.1f s)", spec["id"], record["status"], record["wall_seconds"])


if __name__ == "__main__":
    main()
