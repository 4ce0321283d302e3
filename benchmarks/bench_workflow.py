"""Benchmark: the default workflow from scratch, with per-stage times, and the no-op dry run afterwards.

    python benchmarks/bench_workflow.py [--configfile config.yaml] [--cores all] [--keep DIR]

Runs `snakemake --cores all` in a fresh working directory (nothing cached, the reference converted anew), then
`snakemake -n` on the finished run. Targets (issue 2): the run within 15 minutes on a 2-core CPU machine; the
dry run says "Nothing to be done" within 10 s. Per-stage times come from the rules' benchmark files.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RUN_TARGET_S = 15 * 60
DRY_RUN_TARGET_S = 10


def stage_of(benchmark: Path, root: Path) -> str:
    """benchmarks/gen1/validate.tsv -> validate; benchmarks/gen0/cand1/train.tsv -> train."""
    return benchmark.relative_to(root).with_suffix("").name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--cores", default="all")
    parser.add_argument("--keep", type=Path, default=None, help="run here instead of a temporary directory")
    args = parser.parse_args()
    config = yaml.safe_load(args.configfile.read_text())
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="prefdisco-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(args.configfile.resolve())]

    # Jobs run `python -m prefdisco...`: put this interpreter first on PATH.
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    started = time.monotonic()
    run = subprocess.run([*base, "--cores", args.cores], capture_output=True, text=True, env=env)
    run_s = time.monotonic() - started
    if run.returncode != 0:
        print(run.stderr[-5000:])
        return 1

    started = time.monotonic()
    dry = subprocess.run([*base, "-n"], capture_output=True, text=True, env=env)
    dry_s = time.monotonic() - started
    nothing_to_do = "Nothing to be done" in dry.stdout + dry.stderr

    root = workdir / "results" / config["run"] / "benchmarks"
    per_stage: dict[str, list[float]] = defaultdict(list)
    for tsv in sorted(root.rglob("*.tsv")):
        with tsv.open() as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                per_stage[stage_of(tsv, root)].append(float(row["s"]))

    print(f"workflow benchmark, config {args.configfile.name}, --cores {args.cores}, in {workdir}")
    print(f"{'stage':<20}{'jobs':>6}{'total s':>10}{'mean s':>9}")
    for stage, seconds in sorted(per_stage.items(), key=lambda item: -sum(item[1])):
        print(f"{stage:<20}{len(seconds):>6}{sum(seconds):>10.1f}{sum(seconds) / len(seconds):>9.1f}")
    job_seconds = sum(sum(s) for s in per_stage.values())
    print(f"{'sum of job times':<26}{job_seconds:>10.1f}  (jobs overlap on {args.cores} cores)")
    print(f"whole run: {run_s:.1f} s = {run_s / 60:.1f} min; target {RUN_TARGET_S / 60:.0f} min: "
          f"{run_s / RUN_TARGET_S:.2f}x of target -> {'PASS' if run_s <= RUN_TARGET_S else 'FAIL'}")
    print(f"dry run on the finished run: {dry_s:.1f} s, nothing to do: {nothing_to_do}; target {DRY_RUN_TARGET_S} s "
          f"-> {'PASS' if nothing_to_do and dry_s <= DRY_RUN_TARGET_S else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
