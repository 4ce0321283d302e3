"""The LLM proposer's prompt: the paper's protocol as chat messages.

Layout (after DiscoPOP, Lu et al. 2024, appendix prompt)
    1. system: the task (propose a new offline preference-optimization loss for fine-tuning a language model),
       the exact function interface, the sandbox rules (mirroring :mod:`prefdisco.sandbox.static_policy`) and the JSON
       reply format ``{"thought": ..., "name": ..., "code": ...}``.
    2. user: the archive as context -- each shown record's name, code and outcome line:
       ``Fitness: 0.169 [0.140, 0.198]; vs DPO +0.028 [-0.015, +0.071]`` (status ok; 95% intervals over training
       seeds x held-out prompts and the paired difference to the control, bare ``Fitness: 0.1234`` without them), ``Error: <error>`` (invalid, train_failed, eval_failed) or
       ``Duplicate of <id>: <error>`` (duplicate) -- then the names already proposed by siblings in this
       generation, then the request for candidate k of generation g.

Bounded context
    The archive grows every generation, so only a subset is shown: :data:`BEST_N` evaluated records (the best by
    the lower bound of fitness, or tournament winners for a sibling that should start elsewhere) plus the :data:`RECENT_M` most recent
    records (any status), de-duplicated and listed in archive order. The most recent records are therefore always
    shown, so the results of the last generation are what the next prompt carries. Shown code and error texts are truncated to :data:`MAX_CODE_CHARS` / :data:`MAX_ERROR_CHARS`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random

from ..errors import truncate_error
from ..records import DUPLICATE, FAILED, OK
from ..objectives import display_name

BEST_N = 5
RECENT_M = 8
MAX_CODE_CHARS = 3000
MAX_ERROR_CHARS = 600

SYSTEM_PROMPT = """\
You are a machine learning researcher who is testing out different offline preference-optimization loss \
functions. When you respond, output a JSON object where the first key ("thought") corresponds to your thought \
process when designing the next function, the second key ("name") corresponds to the name of your next \
function, and the last key ("code") corresponds to the exact Python code that you would like to try.

The task: propose a NEW offline preference-optimization objective for fine-tuning a language model on pairs of \
chosen and rejected responses (like DPO). Your loss will be used to fine-tune a model, which is then evaluated; \
its fitness (higher is better) will be shown to you after evaluation, and you will iterate.

The interface -- your code must be exactly one Python function with this signature:

def <your_function_name>(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    ...
    return losses

- The four inputs are float tensors of shape (B,): summed log-probabilities of the chosen and rejected \
responses under the policy being trained and under the frozen reference model.
- self.beta (a float, e.g. 0.1) is available; it scales the implicit reward margin.
- torch, F (torch.nn.functional) and math are already in scope.
- Return the per-example losses: a float tensor of shape (B,), finite and differentiable; lower loss must favour \
the chosen response. The trainer averages it and computes gradients.

Rules (enforced by a static checker; code that breaks them is rejected):
- Exactly one top-level function (an optional docstring is fine); no classes, no other top-level statements.
- Only torch, torch.nn.functional and math may be imported (they are already available, so imports are optional).
- No I/O of any kind: no files, printing, network, subprocesses, environment access, or numpy.
- No randomness, no global state, no try/except, no 'with' blocks, no eval/exec/getattr, no attributes \
starting with '_'.
- Do not call backward() or use autograd directly; just return the losses.
- Use only numerical operations: arithmetic, elementwise functions (exp, log, sigmoid, logsigmoid, softplus, relu, \
tanh, clamp ...), reductions (sum, mean, std, max ...), shape operations, comparisons and torch.where, dtype casts; \
never .data, hooks, grad_fn, sparse tensors, in-place methods (add_), .numpy() or .tolist().

Reply with ONE JSON object and nothing else:
{"thought": "<why this loss might work better>", "name": "<short_snake_case_name>", "code": "<the full Python function as a string>"}
The "name" must equal the function's name in "code". Escape newlines in "code" as \\n (valid JSON)."""


def _truncate(text: str, limit: int) -> str:
    return truncate_error(text or "", limit)


def outcome_line(record: dict) -> str:
    """The line that tells the proposer how a record fared."""
    status = record.get("status")
    error = _truncate(str(record.get("error") or ""), MAX_ERROR_CHARS)
    if status == OK and record.get("fitness") is not None:
        return fitness_text(record)
    if status == DUPLICATE:
        original = record.get("duplicate_of") or "an earlier record"
        return f"Duplicate of {original}: {error or 'behaves like it (same fingerprint); not trained again'}"
    if status in FAILED:
        return f"Error: {error or status}"
    return f"Status: {status or 'unknown'}"


def fitness_text(record: dict) -> str:
    """``Fitness: 0.169 [0.140, 0.198]; vs DPO +0.028 [-0.015, +0.071]`` (95% intervals over seeds x prompts), or the
    bare ``Fitness: 0.1690`` for a record without intervals."""
    intervals = record.get("intervals") or {}
    fitness, difference = intervals.get("fitness"), intervals.get("vs_control")
    if not fitness or not math.isfinite(fitness["low"]):
        return f"Fitness: {float(record['fitness']):.4f}"
    text = f"Fitness: {fitness['mean']:.3f} [{fitness['low']:.3f}, {fitness['high']:.3f}]"
    if difference and math.isfinite(difference["low"]):
        control = display_name(intervals.get("control"))
        text += f"; vs {control} {difference['mean']:+.3f} [{difference['low']:+.3f}, {difference['high']:+.3f}]"
    return text


def ranking_score(record: dict) -> float:
    """The lower 95% bound of fitness where known, else the fitness: what "best" means for the prompt."""
    low = ((record.get("intervals") or {}).get("fitness") or {}).get("low")
    return float(low) if isinstance(low, (int, float)) and math.isfinite(low) else float(record["fitness"])


def select_context(archive: list[dict], best_n: int = BEST_N, recent_m: int = RECENT_M,
                   rng: random.Random | None = None, tournament_size: int = 3) -> list[dict]:
    """The bounded archive subset shown to the proposer (see the module docstring), in archive order.

    Without ``rng`` the evaluated part is the ``best_n`` best by fitness. With it, each of the ``best_n`` is the
    winner of a tournament among ``tournament_size`` evaluated records drawn at random (without replacement across
    winners): good records are still favoured, but siblings of one generation see different parents.
    """
    ok = [r for r in archive if r.get("status") == OK and r.get("fitness") is not None]
    if rng is None:
        best = sorted(ok, key=ranking_score, reverse=True)[:best_n]
    else:
        pool, best = list(ok), []
        while pool and len(best) < best_n:
            entrants = rng.sample(pool, min(tournament_size, len(pool)))
            winner = max(entrants, key=ranking_score)
            best.append(winner)
            pool.remove(winner)
    recent = archive[-recent_m:] if recent_m > 0 else []
    chosen = {id(r) for r in best} | {id(r) for r in recent}
    return [r for r in archive if id(r) in chosen]


def format_record(record: dict) -> str:
    return (f"Name: {record.get('name') or '(unnamed)'} (id {record.get('id')}, generation {record.get('generation')})\n"
            f"Code:\n```python\n{_truncate(record.get('code') or '', MAX_CODE_CHARS).rstrip()}\n```\n"
            f"{outcome_line(record)}")


def build_messages(archive: list[dict], generation: int, candidate: int, siblings: list[str],
                   best_n: int = BEST_N, recent_m: int = RECENT_M, shown: list[dict] | None = None,
                   system_prompt: str = SYSTEM_PROMPT) -> list[dict]:
    """Chat messages asking for candidate ``candidate`` of generation ``generation``.

    ``shown`` is the archive subset to put in the prompt; by default :func:`select_context` (best and recent).
    ``system_prompt`` is the objective family's task description (default: preference objectives).
    """
    if shown is None:
        shown = select_context(archive, best_n, recent_m)
    parts = []
    if shown:
        omitted = len(archive) - len(shown)
        # what the intervals are over: held-out prompts, or a classification run's validation examples
        over = next((r["intervals"]["over"] for r in shown if (r.get("intervals") or {}).get("over")),
                    "held-out prompts")
        header = ("Here are earlier objectives and their results (higher fitness is better; brackets are 95% "
                  f"intervals over training seeds and {over}, 'vs' the paired difference to the control)")
        if omitted:
            header += f"; {omitted} other record(s) of the archive are not shown"
        parts.append(header + ":")
        parts.extend(format_record(r) for r in shown)
    else:
        parts.append("No objectives have been evaluated yet.")
    if siblings:
        parts.append("Already proposed in this generation (propose something different from these): "
                     + ", ".join(siblings))
    parts.append(f"Propose candidate {candidate} of generation {generation}: a new objective, different from all "
                 "of the above, that you expect to reach a higher fitness. Reply with the JSON object only.")
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": "\n\n".join(parts)}]


def prompt_hash(messages: list[dict]) -> str:
    """sha256 of the messages' canonical JSON (sorted keys, no whitespace, UTF-8)."""
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
