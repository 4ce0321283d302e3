"""Chat completions from any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama), with a reply cache.

One client for every LLM the workflow talks to: the proposer and the judges. It owns what they share:

Retries
    Timeouts, connection errors, HTTP 429 and 5xx are retried with exponential backoff
    (``backoff_seconds * 2**attempt``, capped at 30 s), at most ``max_retries`` times per request and never past
    ``max_retry_seconds`` after the request's first attempt (each attempt's timeout is cut to the time left). The
    openai package's own retries are off, so these bounds are the only ones. After a request runs out of retries on
    connection errors, later requests try once: a dead server costs one retry budget, not one per request.

JSON mode
    With ``json_mode`` a request carries ``response_format={"type": "json_object"}``; a server that rejects it
    (HTTP 400/404/422 naming response_format, json_object or JSON mode) is asked again without it, and JSON mode
    stays off for the client's lifetime.

Cache
    Replies are cached by content: model, messages, temperature, max_tokens and a caller-chosen ``sample`` key (so
    that two candidates asking the same question still get two samples). A cached reply is returned without any
    call; rerunning a stage, or re-scoring, never pays twice. Only complete replies are cached, never errors.

Cost
    ``prices`` = {"input": USD per 1M prompt tokens, "output": USD per 1M completion tokens}. A cached reply
    reports the tokens and cost of the call that produced it, with ``cached`` set; :attr:`ChatClient.stats` counts
    what this client actually sent.

Log-probabilities
    ``top_logprobs=k`` asks for the k most likely tokens at each generated position (``logprobs=true``), as
    AlpacaEval's weighted annotator needs; :attr:`Completion.logprobs` holds them in OpenAI's chat schema
    (``[{"token", "logprob", "top_logprobs": [{"token", "logprob"}, ...]}, ...]``). A request without it is cached
    under the same key as before the option existed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from .io import read_json, sha256_text, write_json

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


@dataclass
class EndpointOptions:
    """Where and how to ask: one OpenAI-compatible chat endpoint and model."""

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key (local servers need none)
    temperature: float = 1.0
    max_tokens: int = 1024
    timeout_seconds: float = 60
    max_retries: int = 4
    max_retry_seconds: float = 120
    backoff_seconds: float = 1.0  # first retry delay; doubles each retry
    json_mode: bool = False
    prices: dict = field(default_factory=dict)  # {"input": USD per 1M prompt tokens, "output": ...}


@dataclass
class Completion:
    content: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cached: bool = False
    logprobs: list[dict] | None = None  # per generated token, with its top_logprobs; only when asked for


def endpoint_options(settings: Any) -> EndpointOptions:
    """The endpoint part of a wider settings dataclass (a judge's, an annotator's): its EndpointOptions fields."""
    names = {f.name for f in fields(EndpointOptions)}
    return EndpointOptions(**{k: v for k, v in asdict(settings).items() if k in names})


class ServerError(RuntimeError):
    """No usable reply within the retry budget, or the server refused the request."""


def cost_usd(prompt_tokens: int, completion_tokens: int, prices: dict) -> float:
    return (prompt_tokens * float(prices.get("input", 0.0)) + completion_tokens * float(prices.get("output", 0.0))) / 1e6


class ReplyCache:
    """Content-addressed store of replies: one JSON file per request, under ``folder/<2 hex>/<sha256>.json``."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder else None

    @staticmethod
    def key(request: dict) -> str:
        return sha256_text(json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False))

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        if self.folder is None:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return read_json(path)
        except ValueError:  # a torn file from a killed writer cannot happen (atomic writes), but never trust a cache
            log.warning("ignoring unreadable cache entry %s", path)
            return None

    def put(self, key: str, request: dict, reply: dict) -> None:
        if self.folder is not None:
            write_json(self._path(key), {"request": request, "reply": reply})


def _status_of(error: Exception) -> int | None:
    return getattr(error, "status_code", None)


def _is_retryable(error: Exception) -> bool:
    import openai

    if isinstance(error, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    status = _status_of(error)
    return status is not None and (status == 429 or status >= 500)


def _rejects_json_mode(error: Exception) -> bool:
    if _status_of(error) not in (400, 404, 422):
        return False
    text = str(error).lower()
    return any(word in text for word in ("response_format", "response format", "json_object", "json mode"))


def describe_error(error: Exception) -> str:
    status = _status_of(error)
    message = str(error).strip().replace("\n", " ")[:400]
    name = type(error).__name__
    return f"{name} (HTTP {status}): {message}" if status else f"{name}: {message}"


def _quiet(_: str) -> None:
    pass


class ChatClient:
    """Chat completions from one endpoint, with retries, JSON-mode fallback, the reply cache and usage counts."""

    def __init__(self, options: EndpointOptions, cache: ReplyCache | None = None):
        from openai import OpenAI

        self.options = options
        self.cache = cache or ReplyCache(None)
        self.json_mode = options.json_mode
        self.unreachable = False
        self.stats = {"requests": 0, "cache_hits": 0, "calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                      "cost_usd": 0.0}
        api_key = os.environ.get(options.api_key_env) or "no-key"  # the client insists on one
        self.client = OpenAI(base_url=options.base_url, api_key=api_key, max_retries=0,
                             timeout=options.timeout_seconds)

    backend = "openai"

    @property
    def model_name(self) -> str:
        return self.options.model

    @property
    def base_url(self) -> str:
        return self.options.base_url

    @property
    def default_temperature(self) -> float:
        return self.options.temperature

    @property
    def description(self) -> str:
        return f"{self.options.model} at {self.options.base_url} (temperature {self.options.temperature})"

    def complete(self, messages: list[dict], *, temperature: float | None = None, max_tokens: int | None = None,
                 sample: str = "", note: Callable[[str], None] = _quiet, top_logprobs: int | None = None) -> Completion:
        """One reply to ``messages``; ServerError when none came. ``note`` receives a line per retry or fallback.

        ``top_logprobs``: also return the log-probabilities of the k most likely tokens at each position.
        """
        o = self.options
        temperature = o.temperature if temperature is None else temperature
        max_tokens = o.max_tokens if max_tokens is None else max_tokens
        request = {"model": o.model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens,
                   "sample": sample}
        if top_logprobs is not None:
            request["top_logprobs"] = top_logprobs
        key = self.cache.key(request)
        self.stats["requests"] += 1
        hit = self.cache.get(key)
        if hit is not None:
            self.stats["cache_hits"] += 1
            return Completion(**{**hit["reply"], "cached": True})

        content, finish, usage, logprobs = self._call(messages, temperature, max_tokens, note, top_logprobs)
        completion = Completion(content=content, finish_reason=finish, prompt_tokens=usage[0],
                                completion_tokens=usage[1], cost_usd=round(cost_usd(*usage, o.prices), 8),
                                logprobs=logprobs)
        for name in ("prompt_tokens", "completion_tokens", "cost_usd"):
            self.stats[name] += getattr(completion, name)
        reply = asdict(completion)
        reply.pop("cached")
        self.cache.put(key, request, reply)
        return completion

    def _call(self, messages: list[dict], temperature: float, max_tokens: int, note: Callable[[str], None],
              top_logprobs: int | None = None) -> tuple[str | None, str | None, tuple[int, int], list[dict] | None]:
        import openai

        o = self.options
        started = time.monotonic()
        attempt = 0
        while True:
            kwargs: dict[str, Any] = dict(model=o.model, messages=messages, temperature=temperature,
                                          max_tokens=max_tokens)
            if self.json_mode:
                kwargs["response_format"] = {"type": "json_object"}
            if top_logprobs is not None:
                kwargs.update(logprobs=True, top_logprobs=top_logprobs)
            left = o.max_retry_seconds - (time.monotonic() - started)
            self.stats["calls"] += 1
            try:
                response = self.client.chat.completions.create(
                    timeout=max(0.5, min(float(o.timeout_seconds), left)), **kwargs)
            except openai.OpenAIError as error:
                description = describe_error(error)
                if self.json_mode and _rejects_json_mode(error):
                    note(f"server rejected JSON mode ({description}); asking again without response_format")
                    log.warning("%s rejected response_format json_object; JSON mode off", o.base_url)
                    self.json_mode = False
                    continue
                if not _is_retryable(error):
                    note(f"error (not retried): {description}")
                    raise ServerError(description) from None
                elapsed = time.monotonic() - started
                delay = min(o.backoff_seconds * 2 ** attempt, MAX_BACKOFF_SECONDS)
                connection = isinstance(error, openai.APIConnectionError) and not isinstance(error, openai.APITimeoutError)
                if attempt >= o.max_retries or elapsed + delay >= o.max_retry_seconds or (connection and self.unreachable):
                    self.unreachable = self.unreachable or connection
                    note(f"error: {description}; giving up after {attempt + 1} attempt(s), {elapsed:.1f} s")
                    raise ServerError(f"{description} (gave up after {attempt + 1} attempt(s) in {elapsed:.1f} s)") from None
                note(f"error: {description}; retry {attempt + 1}/{o.max_retries} in {delay:.1f} s")
                time.sleep(delay)
                attempt += 1
                continue
            self.unreachable = False
            try:  # a server may answer 200 with something that is not a chat completion
                choice = response.choices[0] if response.choices else None
                content = choice.message.content if choice is not None else None
                finish = choice.finish_reason if choice is not None else None
                usage = response.usage
                tokens = (int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0))
                logprobs = _token_logprobs(choice) if top_logprobs is not None else None
            except (AttributeError, TypeError, IndexError, ValueError) as error:
                note(f"unexpected response: {error!r}: {str(response)[:500]}")
                raise ServerError(f"the server's response is not a chat completion ({error})") from None
            if top_logprobs is not None and logprobs is None:
                note("the server returned no logprobs although they were asked for")
                raise ServerError(f"{o.base_url} returned no logprobs for model {o.model!r} (logprobs=true, "
                                  f"top_logprobs={top_logprobs}); the judge needs a server that supports them")
            return content, finish, tokens, logprobs


def _token_logprobs(choice) -> list[dict] | None:
    """The chat choice's per-token log-probabilities as plain JSON (token, logprob, top_logprobs)."""
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content:
        return None
    return [{"token": item.token, "logprob": float(item.logprob),
             "top_logprobs": [{"token": t.token, "logprob": float(t.logprob)} for t in (item.top_logprobs or [])]}
            for item in content]
