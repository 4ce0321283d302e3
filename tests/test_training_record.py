"""train.json keeps the whole per-step log, and its metrics (the archive's ``training``) are averages over the
epoch's steps, not the last batch's values."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from prefdisco.stages.archive import generation_records
from prefdisco.io import write_json
from prefdisco.models import load_causal_lm, load_tokenizer
from prefdisco.objectives import library_source
from prefdisco.stages.train import run_training
from prefdisco.trainer import TrainingOptions, compute_reference_logps, summarise_history

from preference_pairs import PAIRS  # 9 pairs

STEP_METRICS = ("loss", "grad_norm", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                "logps/chosen", "logps/rejected")


def test_train_json_has_the_history_and_epoch_averages_that_reach_the_archive(tiny_model_dir, tmp_path):
    opts = TrainingOptions(beta=0.1, learning_rate=1e-2, batch_size=2, epochs=1, max_steps=-1, seed=0, device="cpu",
                           precision="fp32", max_length=64, warmup_steps=0, lr_scheduler="constant", logging_steps=1)
    reference = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    reference_logps = compute_reference_logps(reference, load_tokenizer(tiny_model_dir), PAIRS, opts, tmp_path / "r")
    write_json(tmp_path / "reference.json", {"source": "tiny", "path": str(tiny_model_dir), "revision": None})
    record = run_training({"id": "g1-k0", "code": library_source("dpo")}, tmp_path / "reference.json", PAIRS,
                          reference_logps, opts, tmp_path / "policy")
    assert record["status"] == "ok", record["error"]

    steps = [e for e in record["history"] if "loss" in e]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]  # every step of the epoch, 9 pairs at 2 (one dropped)
    assert record["batching"]["dropped_pairs_per_epoch"] == 1
    metrics = record["metrics"]
    for key in STEP_METRICS:
        assert metrics[key] == pytest.approx(statistics.fmean(e[key] for e in steps), rel=1e-9), key
    assert metrics["loss"] != pytest.approx(steps[-1]["loss"])  # not the last step's value
    assert metrics["logged_steps"] == metrics["steps"] == 4 and metrics["epoch"] == pytest.approx(1.0)
    assert metrics["train_runtime"] > 0

    proposal = {"id": "g1-k0", "generation": 1, "candidate": 0, "name": "dpo", "code": library_source("dpo")}
    verdict = {"id": "g1-k0", "valid": True, "error": None}
    evaluation = {"id": "g1-k0", "status": "ok", "fitness": 0.1, "metrics": {"reward": 0.1, "kl": 0.0}}
    [archived] = generation_records([proposal], [verdict], {"g1-k0": record}, {"g1-k0": evaluation}, [])
    assert archived["training"] == metrics


def test_non_finite_values_and_eval_entries_stay_out_of_the_means():
    history = [
        {"loss": 1.0, "grad_norm": 2.0, "rewards/margins": 0.5, "epoch": 0.5, "step": 1},
        {"eval_loss": 9.0, "epoch": 0.5, "step": 1},
        {"loss": 3.0, "grad_norm": None, "rewards/margins": 1.5, "epoch": 1.0, "step": 2},
        {"train_runtime": 4.0, "train_samples_per_second": 2.0, "train_loss": 2.0, "epoch": 1.0, "step": 2},
    ]
    summary = summarise_history(history)
    assert summary["loss"] == 2.0 and summary["grad_norm"] == 2.0 and summary["rewards/margins"] == 1.0
    assert summary["non_finite"] == {"grad_norm": 1}
    assert summary["logged_steps"] == 2 and summary["steps"] == 2 and summary["train_runtime"] == 4.0
    assert "eval_loss" not in summary and not math.isnan(summary["loss"])
