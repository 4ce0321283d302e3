"""Validate proposed objective programs in the sandbox and flag behavioural duplicates.

    python -m prefdisco.stages.validate --proposals proposals.json [--archive archive.jsonl] [--family preference] \\
        --beta 0.1 --output validation.json [--cpu-seconds 10] [--memory-mb 4096] [--wall-seconds 30]

The proposals file is a JSON list of proposal records (at least "id" and "code"); the archive, when given,
is JSONL of earlier records carrying "id", "fingerprint" and "status". The output is a JSON list with one
validation record per proposal, in order: the sandbox result plus "duplicate_of".
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from prefdisco.errors import truncate_error
from prefdisco.families import FAMILY_NAMES
from prefdisco.io import provenance, read_json, read_jsonl, write_json
from prefdisco.sandbox.checks import CHECK_NAMES, empty_result
from prefdisco.sandbox.runner import SandboxLimits, validate_programs

log = logging.getLogger(__name__)


def validate_proposals(
    proposals: list[dict[str, Any]], archive: list[dict[str, Any]], beta: float, limits: SandboxLimits,
    family: str | None = None,
) -> list[dict[str, Any]]:
    """One validation record per proposal, in order, under the contract and checks of objective ``family``.

    A proposal without code (the proposer failed) is invalid with error "no code: <its 'error' field>".
    ``duplicate_of`` is the id of the first earlier record with the same fingerprint: archive records first,
    then earlier proposals of this batch; None when there is none (and always None for invalid programs,
    which carry no fingerprint).
    """
    programs = [(str(p["id"]), p["code"]) for p in proposals if _has_code(p)]
    sandboxed = iter(validate_programs(programs, beta, limits, family=family)) if programs else iter(())
    records = []
    for proposal in proposals:
        if _has_code(proposal):
            record = next(sandboxed)
        else:
            record = _no_code_record(proposal)
        records.append(record)

    first_seen: dict[str, str] = {}
    for entry in archive:
        if entry.get("fingerprint"):
            first_seen.setdefault(entry["fingerprint"], str(entry["id"]))
    for record in records:
        fingerprint = record["fingerprint"]
        record["duplicate_of"] = first_seen.get(fingerprint) if fingerprint else None
        if fingerprint:
            first_seen.setdefault(fingerprint, record["id"])
    return records


def _has_code(proposal: dict[str, Any]) -> bool:
    code = proposal.get("code")
    return isinstance(code, str) and bool(code.strip())


def _no_code_record(proposal: dict[str, Any]) -> dict[str, Any]:
    result = empty_result()
    result["checks"]["static_policy"] = "fail"
    reason = proposal.get("error") or "the proposal has no code"
    return {
        "id": str(proposal["id"]),
        "valid": False,
        "error": truncate_error(f"no code: {reason}"),
        "checks": result["checks"],
        "fingerprint": None,
        "measurements": {},
        "curve": None,
        "wall_seconds": 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefdisco.stages.validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--proposals", required=True, type=Path, help="JSON list of proposal records")
    parser.add_argument("--archive", type=Path, default=None,
                        help="JSONL archive of earlier records (omit for generation 0; a given path must exist)")
    parser.add_argument("--family", default="preference", choices=FAMILY_NAMES,
                        help="objective family: its contract and property checks (config key family)")
    parser.add_argument("--beta", type=float, default=None,
                        help="the run's beta (preference family: required; classification objectives have none)")
    parser.add_argument("--output", required=True, type=Path, help="where to write the JSON list of records")
    defaults = SandboxLimits()
    parser.add_argument("--cpu-seconds", type=int, default=defaults.cpu_seconds)
    parser.add_argument("--memory-mb", type=int, default=defaults.memory_mb)
    parser.add_argument("--wall-seconds", type=float, default=defaults.wall_seconds)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    if not args.proposals.is_file():
        parser.error(f"proposals file not found: {args.proposals}")
    if args.archive is not None and not args.archive.is_file():
        parser.error(f"archive file not found: {args.archive}")
    if args.beta is None and args.family == "preference":
        parser.error("--beta is required for preference objectives (config training.beta)")
    beta = 1.0 if args.beta is None else args.beta  # classification checks take no beta
    if not beta > 0:
        parser.error(f"--beta must be positive, got {args.beta}")
    proposals = read_json(args.proposals)
    if not isinstance(proposals, list) or not all(isinstance(p, dict) and "id" in p for p in proposals):
        parser.error(f"{args.proposals}: expected a JSON list of proposal records, each with an 'id'")
    archive = read_jsonl(args.archive) if args.archive is not None else []

    limits = SandboxLimits(cpu_seconds=args.cpu_seconds, memory_mb=args.memory_mb, wall_seconds=args.wall_seconds)
    started = time.monotonic()
    records = validate_proposals(proposals, archive, beta, limits, args.family)
    inputs = provenance(args.proposals, args.archive)
    for record in records:
        record["inputs"] = inputs
    for record in records:
        log.info("%s", describe(record))
    write_json(args.output, records)
    valid = sum(record["valid"] for record in records)
    log.info("validated %d proposals in %.2f s: %d valid, %d invalid; wrote %s",
             len(records), time.monotonic() - started, valid, len(records) - valid, args.output)
    return 0


def describe(record: dict[str, Any]) -> str:
    """One log line for a validation record."""
    if record["valid"]:
        duplicate = f", duplicate of {record['duplicate_of']}" if record["duplicate_of"] else ""
        fingerprint = record["fingerprint"][:12]
        return f"{record['id']}: valid (fingerprint {fingerprint}{duplicate}, {record['wall_seconds']:.2f} s)"
    failed = [name for name in CHECK_NAMES if record["checks"].get(name) == "fail"]
    check = f" [{failed[0]}]" if failed else ""
    error = (record["error"] or "").replace("\n", " | ")
    return f"{record['id']}: invalid{check}: {error}"


if __name__ == "__main__":
    sys.exit(main())
