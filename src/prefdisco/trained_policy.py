"""Saving and loading a trained policy.

A full fine-tune is saved as an ordinary transformers folder. When only the top layers were trained, only those
tensors are saved (``trained_parameters.safetensors``) with a pointer to the reference: a CPU run keeps tens of
MB per candidate instead of a whole model copy.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .io import read_json, write_json
from .models import PRECISIONS, load_causal_lm

TRAINED_PARAMETERS = "trained_parameters.safetensors"
POLICY_JSON = "policy.json"


def save_policy(trainer, reference_path: Path, policy_dir: Path, trained_names: list[str] | None) -> None:
    """Save the trained policy: the whole model, or only ``trained_names`` (a top-layers run).

    Every training process must call it (gathering a sharded model is collective); only the main one writes.
    """
    policy_dir = Path(policy_dir)
    policy_dir.mkdir(parents=True, exist_ok=True)
    accelerator = trainer.accelerator
    if trained_names is None:
        trainer.save_model(str(policy_dir))
        if accelerator.is_main_process:
            write_json(policy_dir / POLICY_JSON, {"format": "full", "reference": str(reference_path)})
        return
    state = accelerator.get_state_dict(trainer.model_wrapped)  # whole tensors, also from ZeRO-3 or FSDP shards
    if not accelerator.is_main_process:
        return
    trained = {name: state[name].detach().to("cpu").contiguous() for name in trained_names}
    save_file(trained, str(policy_dir / TRAINED_PARAMETERS))
    write_json(policy_dir / POLICY_JSON, {"format": "trained_parameters", "reference": str(reference_path),
                                          "parameters": sorted(trained)})


def load_policy(policy_dir: Path, device: torch.device, precision: str = "fp32", reference=None):
    """The trained policy; ``reference``: the reference model already loaded on ``device`` in ``precision``, copied
    in memory instead of read from disk again (a top-layers policy is the reference plus its saved tensors)."""
    policy_dir = Path(policy_dir)
    description = read_json(policy_dir / POLICY_JSON)
    if description["format"] == "full":
        return load_causal_lm(policy_dir, device, precision)
    model = copy.deepcopy(reference) if reference is not None else load_causal_lm(description["reference"], device,
                                                                                   precision)
    trained = load_file(str(policy_dir / TRAINED_PARAMETERS))
    own = dict(model.named_parameters())
    unknown = sorted(set(trained) - set(own))
    if unknown:
        raise ValueError(f"{policy_dir}: saved parameters {unknown[:3]} do not exist in the reference model")
    with torch.no_grad():
        for name, tensor in trained.items():
            own[name].copy_(tensor.to(device=device, dtype=PRECISIONS[precision]))
    return model
