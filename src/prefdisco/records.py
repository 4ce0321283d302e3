"""The stage contracts: the records every stage writes and reads, the status words, the ids, and which candidates
go on to training. One home, so a proposer, a stage, a rule and a figure all mean the same thing by each word.

The JSON files are the contract; these types describe them (they are plain dicts on disk and in memory). A key a
stage adds for a person to read, not for another stage, may be missing from the type.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping, Optional, TypedDict

from .io import read_json

# --- the status of a record in the archive (and of a training or evaluation record) ------------------------------
OK = "ok"  # trained and evaluated; has a fitness
INVALID = "invalid"  # failed the sandbox checks (or the proposer gave no code)
DUPLICATE = "duplicate"  # behaves like an earlier candidate (same fingerprint); not trained again
TRAIN_FAILED = "train_failed"  # its objective failed inside training (non-finite loss, a raise, a timeout)
EVAL_FAILED = "eval_failed"  # trained, but the evaluation could not score it
STATUSES = (OK, INVALID, DUPLICATE, TRAIN_FAILED, EVAL_FAILED)
FAILED = (INVALID, TRAIN_FAILED, EVAL_FAILED)  # a status with an error the next prompt shows
TRAINED = (OK, EVAL_FAILED)  # training finished


# --- ids ----------------------------------------------------------------------------------------------------------
CANDIDATE_ID = re.compile(r"g(\d+)-k(\d+)")
# The {unit} wildcard of the train -> evaluate chain: a discovery candidate's folder or a fixed experiment's.
CANDIDATE_UNIT_PATTERN = r"gen\d+/cand\d+(?:/seed\d+)?"  # a replica seed of a promoted candidate: /seed<s>
EXPERIMENT_UNIT_PATTERN = r"experiments/[A-Za-z0-9_-]+/[a-z]+/beta[0-9.e-]+/seed\d+"
TRANSFER_UNIT_PATTERN = r"transfer/[a-z0-9]+/[A-Za-z0-9_-]+/seed\d+"  # classification: a selected loss on another model
CONTROL_UNIT_PATTERN = r"experiments/control/[a-z_]+/seed\d+"  # classification: the control at a seed (no beta)
UNIT_PATTERN = f"{CANDIDATE_UNIT_PATTERN}|{EXPERIMENT_UNIT_PATTERN}|{TRANSFER_UNIT_PATTERN}|{CONTROL_UNIT_PATTERN}"


def candidate_id(generation: int, candidate: int) -> str:
    """The id of candidate k of generation g: ``g{g}-k{k}``."""
    return f"g{generation}-k{candidate}"


def parse_candidate_id(identifier: str) -> tuple[int, int]:
    """(generation, candidate) of a ``g{g}-k{k}`` id."""
    match = CANDIDATE_ID.fullmatch(identifier)
    if match is None:
        raise ValueError(f"{identifier!r} is not a candidate id of the form g<generation>-k<candidate>")
    return int(match.group(1)), int(match.group(2))


def candidate_unit(generation: int, candidate: int) -> str:
    """The folder of a discovery candidate under results/<run>/."""
    return f"gen{generation}/cand{candidate}"


def experiment_unit_id(experiment: str, objective: str, beta: float | str, seed: int | str) -> str:
    """The id of one fixed-experiment unit: ``{experiment}/{objective}/beta{beta}/seed{seed}``."""
    return f"{experiment}/{objective}/beta{beta}/seed{seed}"


def parse_experiment_unit_id(identifier: str) -> tuple[str, str, str, str]:
    """(experiment, objective, beta, seed) of an experiment unit id, beta and seed as written in the id."""
    parts = identifier.split("/")
    if len(parts) != 4 or not parts[2].startswith("beta") or not parts[3].startswith("seed"):
        raise ValueError(f"{identifier!r} is not an experiment unit id <experiment>/<objective>/beta<b>/seed<s>")
    return parts[0], parts[1], parts[2].removeprefix("beta"), parts[3].removeprefix("seed")


def experiment_unit(identifier: str) -> str:
    """The folder of an experiment unit under results/<run>/."""
    return f"experiments/{identifier}"


# --- the records ---------------------------------------------------------------------------------------------------
# Where a record came from: the path of each record it was built from (as the rule named it) and its sha256.
Inputs = dict[str, str]


class ProposerInfo(TypedDict, total=False):
    backend: str  # seed, evolution, replay, openai, transformers
    model: Optional[str]
    temperature: Optional[float]
    seed: Optional[int]
    base_url: str  # LLM backends
    transcript: str  # replay
    replayed_id: Optional[str]  # replay


class Usage(TypedDict, total=False):
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cached: bool  # LLM backends: every reply came from the reply cache


class Proposal(TypedDict, total=False):
    """proposals.json holds a list of these, one per candidate of the generation."""

    id: str
    generation: int
    candidate: int
    name: str
    library_name: str  # seed archive only: the library objective proposed verbatim
    thought: str
    code: str
    genome: Optional[dict]  # an expression tree the evolutionary proposer can breed from
    parents: list[str]
    proposer: ProposerInfo
    prompt_hash: Optional[str]
    usage: Usage
    code_hash: str
    error: str  # the proposer got no usable reply (the proposal has no code)
    wall_seconds: float
    inputs: Inputs


# The proposal's keys an archive record carries, in this order.
PROPOSAL_KEYS = ("id", "generation", "candidate", "name", "library_name", "thought", "code", "genome", "parents",
                 "proposer", "prompt_hash", "usage")


def proposal(generation: int, candidate: int, *, name: str, thought: str, code: str, proposer: ProposerInfo,
             genome: dict | None = None, parents: list[str] | None = None, prompt_hash: str | None = None,
             usage: Usage | None = None, library_name: str | None = None) -> Proposal:
    """A proposal record, with the keys in the order every proposer writes them."""
    record: Proposal = {"id": candidate_id(generation, candidate), "generation": generation, "candidate": candidate,
                        "name": name}
    if library_name is not None:
        record["library_name"] = library_name
    record.update(thought=thought, code=code, genome=genome, parents=list(parents or []), proposer=proposer,
                  prompt_hash=prompt_hash,
                  usage=usage if usage is not None else {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0})
    return record


class Verdict(TypedDict, total=False):
    """validation.json holds a list of these, one per proposal, in order."""

    id: str
    valid: bool
    error: Optional[str]  # the message fed back to the proposer
    checks: dict[str, str]
    fingerprint: Optional[str]
    measurements: dict[str, Any]
    curve: Optional[dict]
    wall_seconds: float
    duplicate_of: Optional[str]
    inputs: Inputs


# The verdict's keys an archive record keeps under "validation".
VALIDATION_KEYS = ("checks", "measurements", "curve", "wall_seconds")


def goes_to_training(verdict: Verdict | dict) -> bool:
    """The one rule for which candidates are trained: valid, and not a duplicate of an earlier candidate."""
    return bool(verdict["valid"]) and not verdict.get("duplicate_of")


class ObjectiveSpec(TypedDict, total=False):
    """objective.json: what one training unit trains with."""

    id: str
    name: str
    code: str
    training_overrides: dict[str, Any]
    library_name: str  # a fixed experiment's library objective
    inputs: Inputs


class TrainingRecord(TypedDict, total=False):
    """train.json of a unit."""

    id: str
    status: str  # OK or TRAIN_FAILED
    error: Optional[str]
    device: str
    processes: int
    precision: str
    options: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict]
    wall_seconds: float
    device_seconds: float
    inputs: Inputs


class Evaluation(TypedDict, total=False):
    """eval.json of a unit (or of the reference)."""

    id: str
    status: str  # OK, EVAL_FAILED, or the training's failure status passed on
    fitness: Optional[float]
    metrics: dict[str, Any]
    error: Optional[str]
    kl_penalty: float
    sampling_seed: int
    wall_seconds: float
    device_seconds: float
    inputs: Inputs


class ArchiveRecord(Proposal, total=False):
    """One line of archive.jsonl: a proposal with its verdict, training and evaluation, and one status."""

    fingerprint: Optional[str]
    duplicate_of: Optional[str]
    validation: dict[str, Any]
    metrics: dict[str, Any]
    training: dict[str, Any]
    fitness: Optional[float]
    status: str
    inputs: Inputs


# --- reading records -------------------------------------------------------------------------------------------------
# The summary, the figures and the benchmark tables read archive records through these, so that they agree on what
# "evaluated" means.
Record = Mapping[str, Any]


def finite(value: Any) -> float | None:
    """``value`` as a float if it is a finite real number, else None (None, NaN, inf, strings, bools)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def is_evaluated(record: Record) -> bool:
    """Status ok with a finite fitness: the candidates that can be ranked and plotted."""
    return record.get("status") == OK and finite(record.get("fitness")) is not None


def metric(record: Record, key: str) -> float | None:
    """A metric of the record (``metrics[key]``) if it is a finite number, else None."""
    return finite((record.get("metrics") or {}).get(key))


def read_reference_metrics(path: Path) -> dict:
    """The reference model's metrics from its evaluate-stage record (or from a bare metrics file)."""
    record = read_json(path)
    return record.get("metrics", record)
