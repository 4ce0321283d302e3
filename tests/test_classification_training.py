"""Classification: the digits split, the confined objective worker, the trainer (surrogate gradients) and scorer."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from prefdisco.classification.data import digits_split
from prefdisco.classification.evaluate import evaluate_unit, wilson_interval
from prefdisco.classification.models import build_model
from prefdisco.classification.objectives import library_source
from prefdisco.classification.train import ClassifierOptions, options_from_dict, run_training, train_classifier
from prefdisco.classification.worker import CandidateError, ObjectiveWorker
from prefdisco.sandbox.static_policy import PolicyViolation

OPTIONS = ClassifierOptions(model="mlp", epochs=3, batch_size=64, learning_rate=0.05, device="cpu")


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


def test_worker_returns_the_losses_and_gradient_of_the_mean():
    logits = torch.randn(32, 10, requires_grad=True)
    targets = torch.randint(0, 10, (32,))
    with ObjectiveWorker(library_source("label_smoothing")) as worker:
        losses, grads = worker.losses_and_grads(logits, targets)
    expected = F.cross_entropy(logits, targets, reduction="none", label_smoothing=0.1)
    (expected_grad,) = torch.autograd.grad(expected.mean(), logits)
    assert torch.allclose(losses, expected.detach(), atol=1e-6)
    assert torch.allclose(grads, expected_grad, atol=1e-7)


def test_worker_runs_the_candidate_outside_this_process(tmp_path):
    marker = tmp_path / "written"
    # Refused on its text before any process starts; a program the policy passes meets the worker's limits.
    with pytest.raises(PolicyViolation, match="'open' is not allowed"):
        ObjectiveWorker(f"def bad(logits, targets):\n    open('{marker}', 'w')\n    return logits.sum(-1)\n")
    code = "def spin(logits, targets):\n    while True:\n        pass\n"
    with ObjectiveWorker(code, replace_limits(call_seconds=2.0)) as worker:
        with pytest.raises(CandidateError, match="longer than 2 s"):
            worker.losses_and_grads(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    assert not marker.exists()


def replace_limits(**changes):
    from prefdisco.classification.worker import WorkerLimits

    return replace(WorkerLimits(), **changes)


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
