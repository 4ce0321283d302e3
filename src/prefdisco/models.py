"""Loading models and choosing device and precision: one place, so every stage does it the same way."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks the GPU when one is visible; ``cpu`` and ``cuda[:n]`` are taken as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device: {device!r} was asked for, but no CUDA device is visible")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` is bf16 on a GPU that supports it, else fp32 (CPU bf16 matmuls are slow and lossy here)."""
    if precision != "auto":
        if precision not in PRECISIONS:
            raise ValueError(f"precision: {precision!r} is not one of auto, {', '.join(PRECISIONS)}")
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def load_causal_lm(path: str | Path, device: torch.device, precision: str = "fp32"):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=PRECISIONS[precision])
    return model.to(device)


def load_tokenizer(path: str | Path, padding_side: str = "left"):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def set_threads(threads: int | None) -> None:
    """Pin torch's intra-op threads to what the scheduler gave this job, so parallel jobs don't oversubscribe."""
    if threads:
        torch.set_num_threads(threads)
