"""Verify a run: every record parses, and every input a record names still has the sha256 it was built from.

    python -m prefdisco.stages.verify results/<run>      (from the folder Snakemake runs in; or `snakemake verify`)

Prints one line per damaged file (not valid JSON) and per inconsistent pair (a record built from bytes an input no
longer has), then the one command that rebuilds the damaged files and everything built from them, and nothing else.
Exit status 1 when anything is wrong.

Why that command: a damaged record usually has a newer modification time than the records built from it, so a
plain ``snakemake`` reruns those dependents first -- deleting their good outputs -- and fails reading the damaged
file; with the old modification time kept, Snakemake sees nothing at all. ``--forcerun <file>`` reruns the file's
own job before anything that reads it, and Snakemake then reruns exactly the jobs downstream of it (their input is
rebuilt); no other job runs. A rebuilt record differs from the lost one at least in its timings, so its dependents
are rebuilt too: nothing guarantees they would come out the same.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from ..cli import setup_logging
from ..io import sha256_file

log = logging.getLogger(__name__)

# Folders of a run that hold no records: model weights, logs, timings, LLM conversations.
NOT_RECORDS = {"policy", "logs", "benchmarks", "transcripts", "reference"}


@dataclass(frozen=True)
class Problem:
    path: str  # the file to rebuild (relative to the folder Snakemake runs in)
    message: str


def record_files(run_dir: Path) -> list[Path]:
    """The JSON and JSONL records of a run, in a stable order."""
    files = []
    for path in sorted(run_dir.rglob("*")):
        parts = path.relative_to(run_dir).parts
        if path.is_file() and path.suffix in (".json", ".jsonl") and not NOT_RECORDS.intersection(parts[:-1]):
            files.append(path)
    # the reference's own record (reference/reference.json, reference/eval.json), not the model files beside it
    files += sorted(p for p in (run_dir / "reference").glob("*.json") if p.name in ("reference.json", "eval.json"))
    return files


def parse(path: Path) -> list[dict] | None:
    """The records of a JSON or JSONL file (a list, an object, or one object per line); None if it does not parse."""
    text = path.read_text(errors="replace")
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else [value]


def verify_run(run_dir: Path, workdir: Path) -> list[Problem]:
    """Every problem of the run under ``run_dir``; paths in records are relative to ``workdir``."""
    problems: list[Problem] = []
    digests: dict[str, str] = {}

    def name(path: Path) -> str:
        try:
            return str(path.resolve().relative_to(workdir.resolve()))
        except ValueError:
            return str(path)

    parsed = {}
    for path in record_files(run_dir):
        records = parse(path)
        if records is None:
            problems.append(Problem(name(path), f"{name(path)}: damaged (not valid JSON)"))
        else:
            parsed[path] = records
    damaged = {p.path for p in problems}
    for path, records in parsed.items():
        seen: set[tuple[str, str]] = set()
        for record in records:
            inputs = record.get("inputs") if isinstance(record, dict) else None
            for source, recorded in (inputs or {}).items():
                if (source, recorded) in seen or source in damaged:
                    continue  # a damaged input is reported once, as damaged
                seen.add((source, recorded))
                source_path = workdir / source
                if not source_path.is_file():
                    problems.append(Problem(source, f"{name(path)}: built from {source}, which is missing"))
                    continue
                current = digests.get(source) or digests.setdefault(source, sha256_file(source_path))
                if current != recorded:
                    problems.append(Problem(source, f"{name(path)}: built from {source} with sha256 {recorded[:12]}, "
                                                    f"which now has {current[:12]} (changed after the record was built)"))
    return problems


def rebuild_command(problems: list[Problem], snakemake_args: str = "--cores all") -> str:
    """The command that reruns the jobs of the damaged files first and then exactly what depends on them."""
    files = sorted({p.path for p in problems})
    return f"snakemake {snakemake_args} --forcerun {' '.join(shlex.quote(f) for f in files)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="results/<run>")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="the folder Snakemake runs in (default: two levels above results/<run>)")
    parser.add_argument("--report", type=Path, default=None, help="also write the findings here (the verify rule)")
    args = parser.parse_args(argv)
    setup_logging()
    if not args.run_dir.is_dir():
        parser.error(f"{args.run_dir}: no such run folder")
    workdir = args.workdir or args.run_dir.resolve().parents[1]
    problems = verify_run(args.run_dir, workdir)
    lines = [p.message for p in problems]
    if problems:
        lines += ["", "Rebuild the damaged files and everything built from them (nothing else) with:",
                  f"  {rebuild_command(problems)}"]
    else:
        lines.append(f"{args.run_dir}: {len(record_files(args.run_dir))} records parse and match every recorded input")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.report is not None:
        args.report.write_text(text)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
