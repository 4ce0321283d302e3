"""Loading models and choosing device and precision: one place, so every stage does it the same way."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .io import read_json

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


def load_for_inference(model_dir: str | Path, device: str = "auto", precision: str = "auto",
                       policy_dir: str | Path | None = None, reference=None):
    """A model for inference on this device: the reference at ``model_dir``, or the trained policy in
    ``policy_dir`` over it, on ``device`` in ``precision`` (the config's training.device and training.precision;
    auto: the GPU when one is visible, in bf16 where it has it, else fp32). Every stage that samples from or
    scores a model (preferences, evaluate, benchmark answers) loads through here, so they agree; a record reads
    the placement back from the model (``model.device``, :func:`precision_of`)."""
    placed = resolve_device(device)
    resolved = resolve_precision(precision, placed)
    if policy_dir is None:
        model = load_causal_lm(model_dir, placed, resolved)
    else:
        from .trained_policy import load_policy  # trained_policy.py builds on this module

        model = load_policy(policy_dir, placed, resolved, reference)
    return model.eval()


def precision_of(model) -> str:
    """The precision name (fp32, bf16, fp16) of a model's weights."""
    dtype = next(model.parameters()).dtype
    return next(name for name, d in PRECISIONS.items() if d == dtype)


def master_weights_precision(precision: str, processes: int = 1, distributed: str = "deepspeed_zero3") -> str:
    """The dtype training loads (and keeps) the weights in, for a resolved ``training.precision``.

    fp32, with bf16/fp16 only in the forward (TrainingArguments' autocast): AdamW updating bf16 weights in place
    rounds away steps of the paper's size (lr 5e-7 moves about 1% of the weights at all). The exception is
    DeepSpeed over several processes: it keeps its own fp32 master copy of a bf16 model and shards it, so the
    weights load in the training precision there (a whole fp32 copy per process would need twice the host memory).
    DDP and FSDP keep no master copy, so they get fp32 weights too.
    """
    if processes > 1 and distributed.startswith("deepspeed"):
        return precision
    return "fp32"


def load_tokenizer(path: str | Path, padding_side: str = "left"):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def prompt_token_count(tokenizer, prompt: str | list[dict]) -> int:
    """Tokens of a pair's prompt as TRL's DPOTrainer counts them when it drops pairs whose prompt alone reaches
    max_length: a conversation through the chat template with the generation prompt, text through the tokenizer
    with its special tokens. It lives here, not in trainer.py, so that the preferences stage need not import TRL."""
    if isinstance(prompt, list):
        return len(tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True,
                                                 return_dict=True)["input_ids"])
    return len(tokenizer(prompt)["input_ids"])


def set_threads(threads: int | None) -> None:
    """Pin torch's intra-op threads to what the scheduler gave this job, so parallel jobs don't oversubscribe."""
    if threads:
        torch.set_num_threads(threads)


def reference_path(reference_json: str | Path) -> Path:
    """The model folder that a ``reference.json`` points to (written by :mod:`prefdisco.stages.reference`)."""
    description = read_json(reference_json)
    path = Path(description["path"])
    if not path.is_dir():
        raise FileNotFoundError(f"{reference_json}: reference model folder {path} is missing")
    return path
