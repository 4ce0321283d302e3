"""bf16 training keeps fp32 master weights on one process: the forward runs under bf16 autocast, the optimizer
updates fp32 weights, so steps of the paper's size (lr 5e-7) are not rounded away."""

from __future__ import annotations

import torch

from prefdisco.io import write_json
from prefdisco.models import load_causal_lm, load_tokenizer, master_weights_precision
from prefdisco.objectives import library_source
from prefdisco.trained_policy import load_policy
from prefdisco.sandbox.worker import ObjectiveWorker
from prefdisco.stages.train import run_training
from prefdisco.trainer import TrainingOptions, attach_reference_logps, compute_reference_logps, train_objective

from preference_pairs import PAIRS  # 9 pairs

CPU = torch.device("cpu")


def options() -> TrainingOptions:
    return TrainingOptions(beta=0.1, learning_rate=5e-7, batch_size=4, max_steps=2, seed=0, device="cpu",
                           precision="bf16", max_length=64, warmup_steps=0, lr_scheduler="constant")


def changed_fraction(model, reference) -> float:
    own = dict(reference.named_parameters())
    changed = sum((p.float() != own[n].float()).sum().item() for n, p in model.named_parameters())
    return changed / sum(p.numel() for p in model.parameters())


def test_only_deepspeed_keeps_its_own_master_weights():
    assert master_weights_precision("bf16") == "fp32"
    assert master_weights_precision("fp16", 1, "deepspeed_zero3") == "fp32"
    assert master_weights_precision("bf16", 8, "deepspeed_zero3") == "bf16"
    assert master_weights_precision("bf16", 2, "ddp") == master_weights_precision("bf16", 8, "fsdp") == "fp32"


def test_bf16_training_updates_fp32_master_weights_at_lr_5e_7(tiny_model_dir, tmp_path):
    opts, pairs = options(), PAIRS[:8]
    tokenizer = load_tokenizer(tiny_model_dir)
    reference = load_causal_lm(tiny_model_dir, CPU, master_weights_precision("bf16"))
    reference_logps = compute_reference_logps(reference, tokenizer, pairs, opts, tmp_path / "ref")
    write_json(tmp_path / "reference.json", {"source": "tiny", "path": str(tiny_model_dir), "revision": None})

    record = run_training({"id": "g0-k0", "code": library_source("dpo")}, tmp_path / "reference.json", pairs,
                          reference_logps, opts, tmp_path / "policy")
    assert record["status"] == "ok", record["error"]
    assert record["precision"] == "bf16" and record["master_weights"] == "fp32"
    policy = load_policy(tmp_path / "policy", CPU)
    assert changed_fraction(policy, reference) > 0.9

    # The old path: weights loaded in bf16 and updated in place; nearly every step rounds away.
    bf16_model, bf16_start = (load_causal_lm(tiny_model_dir, CPU, "bf16") for _ in range(2))
    with ObjectiveWorker(library_source("dpo")) as worker:
        train_objective(bf16_model, tokenizer, attach_reference_logps(pairs, reference_logps), worker, opts,
                        tmp_path / "old")
    assert next(bf16_model.parameters()).dtype == torch.bfloat16
    assert changed_fraction(bf16_model, bf16_start) < 0.05
