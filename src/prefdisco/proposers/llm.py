"""LLM proposers: the paper's protocol over a chat model (an OpenAI-compatible server, or a local transformers model).

Protocol (per generation g, population K)
    One chat request per candidate k = 0..K-1 with the messages of :func:`prompts.build_messages`: the system
    prompt (task, interface, rules, reply format), the archive as context (code and "Fitness: x" or the error of
    each shown record) and the names already proposed by siblings k' < k. The reply must be one JSON object
    ``{"thought", "name", "code"}`` (a fenced block or an object inside prose is tolerated) whose code parses as
    Python; a missing ``name`` is taken from the function in the code. Whether the code obeys the objective
    contract is the sandbox's question, not this module's: a reply that parses goes to validation, and the
    validation error comes back in the next generation's prompt.

    A malformed reply (no JSON, missing keys, code that does not parse) gets ONE corrective re-ask: the bad reply
    goes back as the assistant turn and a user turn says exactly what was wrong. If that fails too, the proposal
    is recorded without code and with ``error``; server trouble past the retry budget likewise. Nothing here
    raises for a bad reply or a bad server: the validation stage turns a proposal without code into an invalid
    record ("no code: <error>") and the generation carries on.

Diversity
    Candidate 0 sees the archive's best records; candidate k >= 1 sees records drawn by fitness tournaments
    (seeded by the run seed, g and k), so siblings start from different parents. ``temperatures`` (a list) gives
    candidate k the temperature ``temperatures[k % len]``. The shown records are the proposal's ``parents``.

Records
    Keys as every proposer writes them: id ``g{g}-k{k}``, generation, candidate, name, thought, code, genome
    (None), parents, proposer {backend, model, temperature, base_url, seed}, prompt_hash (of the first request),
    usage {prompt_tokens, completion_tokens, cost_usd, cached} summed over the candidate's calls, and ``error``
    for a failed one. A transcript ``g{g}-k{k}.md`` per candidate holds every message sent and every reply or
    error received. Replies come through the chat's reply cache, so a rerun asks nothing twice.
"""

from __future__ import annotations

import ast
import json
import logging
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from ..errors import truncate_error
from ..io import write_text
from ..llm_client import Completion, ServerError
from ..records import candidate_id, proposal
from .prompts import BEST_N, RECENT_M, build_messages, prompt_hash, select_context

log = logging.getLogger(__name__)


class Chat(Protocol):
    """What a proposer needs of a chat model: :class:`prefdisco.llm_client.ChatClient` or a local model."""

    backend: str  # "openai" or "transformers", as the config names it
    model_name: str
    base_url: str | None
    default_temperature: float
    description: str

    def complete(self, messages: list[dict], *, temperature: float | None = None, max_tokens: int | None = None,
                 sample: str = "", note: Callable[[str], None] = ...) -> Completion: ...


@dataclass
class ProtocolOptions:
    """How proposals are asked for, whatever the model."""

    context_best: int = BEST_N  # archive context: the N best evaluated records ...
    context_recent: int = RECENT_M  # ... plus the M most recent records of any status
    temperatures: list[float] = field(default_factory=list)  # per candidate, cycled; empty: the model's temperature


class ReplyError(ValueError):
    """The reply cannot be used; the message says exactly why (it is sent back to the model once)."""


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def _json_candidates(text: str) -> list[str]:
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    return candidates


def parse_reply(text: str | None) -> dict:
    """``{"thought", "name", "code"}`` from a reply, or ReplyError naming what is wrong."""
    if text is None or not text.strip():
        raise ReplyError("the reply was empty; expected one JSON object with keys thought, name and code")
    obj, decode_error = None, None
    for candidate in _json_candidates(text):
        try:
            obj = json.loads(candidate)
            break
        except json.JSONDecodeError as error:
            decode_error = decode_error or error
    if obj is None:
        raise ReplyError(f"the reply is not valid JSON ({decode_error}); expected one JSON object with keys "
                         "thought, name and code, with the code's newlines escaped as \\n")
    if not isinstance(obj, dict):
        raise ReplyError(f"the reply is JSON but a {type(obj).__name__}, not an object with keys thought, name and code")
    code = obj.get("code")
    if not isinstance(code, str) or not code.strip():
        present = ", ".join(sorted(repr(str(key)[:40]) for key in obj)[:10]) or "none"
        raise ReplyError(f'the JSON object has no non-empty string "code" (keys present: {present}); '
                         '"code" must hold the full Python function as a string')
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        raise ReplyError(f'the "code" is not valid Python: {error.msg} (line {error.lineno})') from None
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    if not functions:
        raise ReplyError('the "code" defines no function; it must be one function with the interface above')
    name = obj.get("name")
    thought = obj.get("thought")
    return {"thought": thought if isinstance(thought, str) else ("" if thought is None else json.dumps(thought)),
            # The function's own name is what the trainer calls; a differing "name" would only mislead the archive.
            "name": functions[0] if len(functions) == 1 or not isinstance(name, str) else name,
            "code": code}


class Transcript:
    """A candidate's conversation as Markdown a person can read: every message, reply, retry and verdict."""

    def __init__(self, path: Path, title: str):
        self.path = path
        self.lines = [f"# {title}", ""]

    def add(self, heading: str, body: str) -> None:
        self.lines += [f"## {heading}", "", "````", body.rstrip(), "````", ""]

    def note(self, text: str) -> None:
        self.lines += [f"_{time.strftime('%H:%M:%S')}_ {text}", ""]

    def messages(self, messages: list[dict], start: int = 0) -> None:
        for i, message in enumerate(messages[start:], start=start):
            self.add(f"message {i} ({message['role']})", message["content"])

    def write(self) -> None:
        write_text(self.path, "\n".join(self.lines) + "\n")


def _corrective_message(reason: str) -> str:
    return (f"Your reply could not be used: {reason}\n\nReply again with ONE JSON object and nothing else: "
            '{"thought": "...", "name": "...", "code": "..."}, where "code" is the full Python function '
            "(following the interface and rules above) as a JSON string.")


def _shown_parents(archive: list[dict], generation: int, candidate: int, seed: int, options: ProtocolOptions) -> list[dict]:
    rng = None if candidate == 0 else random.Random(f"{seed}/g{generation}/k{candidate}")
    return select_context(archive, options.context_best, options.context_recent, rng)


def propose_one(chat: Chat, archive: list[dict], generation: int, candidate: int, siblings: list[str], seed: int,
                options: ProtocolOptions, transcript: Transcript, system_prompt: str | None = None) -> dict:
    shown = _shown_parents(archive, generation, candidate, seed, options)
    extra = {"system_prompt": system_prompt} if system_prompt else {}  # the objective family's task description
    messages = build_messages(archive, generation, candidate, siblings, shown=shown, **extra)
    temperature = options.temperatures[candidate % len(options.temperatures)] if options.temperatures else None
    record: dict[str, Any] = proposal(
        generation, candidate, name="", thought="", code="", parents=[r["id"] for r in shown if r.get("id")],
        proposer={"backend": chat.backend, "model": chat.model_name,
                  "temperature": chat.default_temperature if temperature is None else temperature,
                  "base_url": chat.base_url, "seed": seed},
        prompt_hash=prompt_hash(messages),
        usage={"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "cached": False})
    transcript.messages(messages)
    for turn in range(2):  # the request, then at most one corrective re-ask
        sent = len(messages)
        try:
            reply = chat.complete(messages, temperature=temperature, sample=f"{record['id']}/turn{turn}/seed{seed}",
                                  note=transcript.note)
        except ServerError as error:
            record["error"] = truncate_error(f"proposer request failed: {error}")
            break
        usage = record["usage"]
        usage["prompt_tokens"] += reply.prompt_tokens
        usage["completion_tokens"] += reply.completion_tokens
        usage["cost_usd"] = round(usage["cost_usd"] + reply.cost_usd, 8)
        # cached: every reply this candidate got came from the cache (none at all is not "cached")
        usage["cached"] = reply.cached if turn == 0 else usage["cached"] and reply.cached
        transcript.add(f"reply {turn} ({'cached, ' if reply.cached else ''}finish_reason {reply.finish_reason}, "
                       f"{reply.prompt_tokens} prompt + {reply.completion_tokens} completion tokens)",
                       reply.content or "(empty)")
        try:
            parsed = parse_reply(reply.content)
        except ReplyError as error:
            reason = truncate_error(str(error))
            if reply.finish_reason == "length":
                reason += " (the reply was cut off at the token limit)"
            transcript.note(f"malformed reply: {reason}")
            if turn == 0:
                messages = messages + [{"role": "assistant", "content": reply.content or ""},
                                       {"role": "user", "content": _corrective_message(reason)}]
                transcript.messages(messages, start=sent)
                continue
            record["error"] = f"malformed reply after one corrective re-ask: {reason}"
            break
        record.update(parsed)
        break
    if record.get("error"):
        transcript.note(f"gave up: {record['error']}")
    else:
        transcript.note(f"accepted: {record['name']} (goes to sandbox validation)")
    return record


def propose_llm(chat: Chat, archive: list[dict], generation: int, population: int, seed: int,
                options: ProtocolOptions, transcript_dir: Path, system_prompt: str | None = None) -> list[dict]:
    """``population`` proposal records for ``generation``; never raises for a bad reply or an unreachable server."""
    transcript_dir = Path(transcript_dir)
    proposals: list[dict] = []
    for k in range(population):
        siblings = [p["name"] for p in proposals if p.get("name")]
        transcript = Transcript(transcript_dir / f"{candidate_id(generation, k)}.md",
                                f"{candidate_id(generation, k)}: {chat.description} (seed {seed})")
        started = time.monotonic()
        try:
            record = propose_one(chat, archive, generation, k, siblings, seed, options, transcript, system_prompt)
        finally:
            transcript.write()
        record["wall_seconds"] = round(time.monotonic() - started, 3)
        if record.get("error"):
            log.warning("g%d-k%d: %s", generation, k, record["error"])
        proposals.append(record)
    return proposals
