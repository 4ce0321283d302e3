"""Classification: the digits split, the confined objective worker (sandbox.worker, serving the classification
contract), the trainer (surrogate gradients) and scorer."""

from __future__ import annotations

import glob
import math
import os
import re
import tempfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from prefdisco.classification.data import digits_split
from prefdisco.classification.evaluate import evaluate_unit, wilson_interval
from prefdisco.classification.models import build_model
from prefdisco.classification.objectives import library_source
from prefdisco.classification.train import ClassifierOptions, options_from_dict, run_training, train_classifier
from prefdisco.errors import CandidateError
from prefdisco.sandbox.runner import SandboxLimits
from prefdisco.sandbox.worker import ObjectiveWorker
from unchecked_worker import COMMAND as UNCHECKED_WORKER

OPTIONS = ClassifierOptions(model="mlp", epochs=3, batch_size=64, learning_rate=0.05, device="cpu")
LIMITS = SandboxLimits(cpu_seconds=5, memory_mb=4096, wall_seconds=5.0)


@pytest.fixture(scope="module")
def digits() -> dict:
    return digits_split(seed=0)


def test_digits_split_is_fixed_disjoint_and_complete(digits):
    assert (len(digits["train_y"]), len(digits["val_y"]), len(digits["test_y"])) == (1078, 359, 360)
    assert digits["train_x"].shape[1:] == (1, 8, 8) and float(digits["train_x"].max()) <= 1.0
    again = digits_split(seed=0)
    assert torch.equal(again["val_x"], digits["val_x"]) and torch.equal(again["test_y"], digits["test_y"])
    rows = {tuple(x.flatten().tolist()) + (int(y),) for split in ("train", "val", "test")
            for x, y in zip(digits[f"{split}_x"], digits[f"{split}_y"])}
    assert len(rows) >= 1797 - 20  # a few digits images are exact duplicates in the source data
    assert not torch.equal(digits_split(seed=1)["val_y"], digits["val_y"])


def classify(code: str, logits: torch.Tensor, targets: torch.Tensor, limits: SandboxLimits = LIMITS, **kwargs):
    with ObjectiveWorker(code, limits, family="classification", **kwargs) as worker:
        return worker.evaluate_classification(logits, targets)


def test_worker_returns_the_losses_and_gradient_of_the_mean():
    logits = torch.randn(32, 10, requires_grad=True)
    targets = torch.randint(0, 10, (32,))
    losses, grads = classify(library_source("label_smoothing"), logits, targets)
    expected = F.cross_entropy(logits, targets, reduction="none", label_smoothing=0.1)
    (expected_grad,) = torch.autograd.grad(expected.mean(), logits)
    assert losses.dtype == grads.dtype == torch.float32 and grads.shape == (32, 10)
    assert torch.allclose(losses, expected.detach(), atol=1e-6)
    assert torch.allclose(grads, expected_grad, atol=1e-7)


def test_the_worker_is_the_fresh_confined_interpreter_of_preference_objectives():
    """Not a fork of the trainer: the same `python -m prefdisco.sandbox.worker`, told the classification family."""
    with ObjectiveWorker(library_source("cross_entropy"), LIMITS, family="classification") as worker:
        worker.evaluate_classification(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
        command = Path(f"/proc/{worker.process.pid}/cmdline").read_bytes().split(b"\0")
        assert command[1:3] == [b"-m", b"prefdisco.sandbox.worker"], command
        assert command[command.index(b"--family") + 1] == b"classification", command
        with pytest.raises(RuntimeError, match="serves the classification contract, not preference"):
            worker.evaluate(0.1, *[torch.zeros(2)] * 4)


MARKER = os.path.join(tempfile.gettempdir(), "prefdisco_pwned_by_a_classifier")


@pytest.mark.parametrize(("write", "command", "reason"), [
    # the static policy, applied by the worker's loader under this contract
    (f"open({MARKER!r}, 'w')", None, "'open' is not allowed"),
    # with the policy bypassed: the audit hook, armed around the call
    (f"torch.save(logits, {MARKER!r})", UNCHECKED_WORKER, "the objective attempted a blocked operation"),
])
def test_a_hostile_write_is_refused_in_the_worker(write, command, reason):
    code = f"def bad(logits, targets):\n    {write}\n    return logits.sum(-1)\n"
    with pytest.raises(CandidateError, match=reason):
        classify(code, torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), command=command)
    assert glob.glob(MARKER) == []


def test_a_looping_candidate_times_out_per_call():
    code = "def spin(logits, targets):\n    while True:\n        pass\n"
    with pytest.raises(CandidateError, match="timed out after 2 s during a call"):
        classify(code, torch.zeros(2, 3), torch.zeros(2, dtype=torch.long),
                 SandboxLimits(cpu_seconds=30, memory_mb=4096, wall_seconds=2.0))


@pytest.mark.parametrize(("body", "reason"), [
    ("return F.cross_entropy(logits, targets)", "a scalar (shape ()) for a batch of 4"),
    ("return logits", "shape (4, 3) for a batch of 4"),
    ("return targets * 1", "dtype torch.int64"),
    ("return F.cross_entropy(logits.detach(), targets, reduction='none')", "do not depend differentiably on the logits"),
    ("return F.cross_entropy(logits, targets, reduction='none') / 0.0", "non-finite loss (inf)"),
    ("return torch.sqrt(logits - logits)[:, 0]", "non-finite gradient with respect to the logits"),
])
def test_the_worker_refuses_a_bad_result_naming_the_problem(body, reason):
    code = f"def bad(logits, targets):\n    {body}\n"
    with pytest.raises(CandidateError, match=re.escape(reason)):
        classify(code, torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))


def test_training_through_the_worker_equals_training_with_the_loss_in_process(digits):
    model, history = train_classifier(library_source("cross_entropy"), digits, OPTIONS)
    torch.manual_seed(OPTIONS.seed)
    direct = build_model("mlp")
    optimizer = torch.optim.SGD(direct.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 3 * math.ceil(1078 / 64))
    generator = torch.Generator().manual_seed(OPTIONS.seed)
    for _ in range(3):
        order = torch.randperm(1078, generator=generator)
        for start in range(0, 1078, 64):
            index = order[start:start + 64]
            optimizer.zero_grad()
            F.cross_entropy(direct(digits["train_x"][index]), digits["train_y"][index]).backward()
            optimizer.step()
            schedule.step()
    for ours, theirs in zip(model.parameters(), direct.parameters()):
        assert torch.allclose(ours, theirs, atol=1e-5)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["val_accuracy"] > 0.8  # far above chance (0.1) after 3 epochs


def test_a_failing_candidate_is_a_recorded_result(digits, tmp_path):
    spec = {"id": "g1-k0", "code": "def bad(logits, targets):\n    return F.cross_entropy(logits, targets, "
                                   "reduction='none') * (logits.sum() > 1e9).float() / 0.0\n", "training_overrides": {}}
    record = run_training(spec, digits, OPTIONS, tmp_path / "model.pt")
    assert record["status"] == "train_failed" and "non-finite" in record["error"]
    evaluation = evaluate_unit(record, tmp_path / "model.pt", digits)
    assert evaluation["status"] == "train_failed" and evaluation["fitness"] is None


def test_fitness_is_validation_accuracy_and_test_is_reported(digits, tmp_path):
    spec = {"id": "seed", "code": library_source("focal"), "training_overrides": {"epochs": 2}}
    record = run_training(spec, digits, OPTIONS, tmp_path / "model.pt")
    assert record["status"] == "ok" and record["options"]["epochs"] == 2
    evaluation = evaluate_unit(record, tmp_path / "model.pt", digits)
    metrics = evaluation["metrics"]
    assert evaluation["fitness"] == metrics["val_accuracy"] == record["metrics"]["val_accuracy"]
    assert metrics["n_val"] == 359 and metrics["n_test"] == 360
    assert metrics["val_ci_low"] < metrics["val_accuracy"] < metrics["val_ci_high"]
    assert sum(metrics["per_example"]["val_correct"]) == round(metrics["val_accuracy"] * 359)


def test_wilson_interval_and_options():
    low, high = wilson_interval(90, 100)
    assert 0.82 < low < 0.83 and 0.94 < high < 0.95
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="classification.training.model"):
        options_from_dict({"model": "vgg"})
    with pytest.raises(ValueError, match="unknown option"):
        options_from_dict({"epochz": 3})


@pytest.mark.parametrize("name", ["resnet18", "simpledla", "efficientnetb0"])
def test_cifar_models_take_cifar_images(name):
    torch.manual_seed(0)
    model = build_model(name, classes=10, in_channels=3)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
