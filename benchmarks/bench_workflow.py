"""Benchmark: the default workflow from scratch, per-stage times, the verdict's detectable difference, the dry run.

    python benchmarks/bench_workflow.py [--configfile config.yaml] [--compare other.yaml] [--cores all] [--keep DIR]

Runs `snakemake --cores all` in a fresh working directory (nothing cached, the reference converted anew), then
`snakemake -n` on the finished run. With --compare, runs a second config the same way, one after the other on the
same machine, and prints the two side by side (e.g. the current default against a cheaper candidate budget).
Targets (issues 2 and 12): the run within 15 minutes on a 2-core CPU machine; the dry run says "Nothing to be done"
within 10 s; the minimum detectable fitness difference to the control (80% power, 5% level) at most 0.03.
Per-stage times come from the rules' benchmark files; the detectable difference from results/<run>/verdict.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
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
MDD_TARGET = 0.03


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def stage_of(benchmark: Path, root: Path) -> str:
    """benchmarks/gen1/validate.tsv -> validate; benchmarks/gen0/cand1/train.tsv -> train."""
    return benchmark.relative_to(root).with_suffix("").name


def run_workflow(configfile: Path, cores: str, workdir: Path) -> dict | None:
    config = yaml.safe_load(configfile.read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(configfile.resolve())]
    # Jobs run `python -m prefdisco...`: put this interpreter first on PATH.
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    started = time.monotonic()
    run = subprocess.run([*base, "--cores", cores], capture_output=True, text=True, env=env)
    run_s = time.monotonic() - started
    if run.returncode != 0:
        print(run.stderr[-5000:])
        return None
    started = time.monotonic()
    dry = subprocess.run([*base, "-n"], capture_output=True, text=True, env=env)
    dry_s = time.monotonic() - started

    results = workdir / "results" / config["run"]
    root = results / "benchmarks"
    per_stage: dict[str, list[float]] = defaultdict(list)
    for tsv in sorted(root.rglob("*.tsv")):
        with tsv.open() as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                per_stage[stage_of(tsv, root)].append(float(row["s"]))
    verdict_path = results / "verdict.json"
    verdict = json.loads(verdict_path.read_text()) if verdict_path.exists() else {}
    return {"name": configfile.name, "workdir": workdir, "run_s": run_s, "dry_s": dry_s,
            "nothing_to_do": "Nothing to be done" in dry.stdout + dry.stderr, "per_stage": per_stage,
            "verdict": verdict, "fitness": config.get("fitness", {}), "task": config["task"]["options"],
            "training": config["training"]}


def mdd_line(result: dict) -> str:
    planned = (result["verdict"] or {}).get("detectable_difference")
    if not planned:
        return "minimum detectable difference: not available (the control needs 2 seeds and 2 prompts)"
    return (f"minimum detectable fitness difference to the control at {planned['seeds']} seed(s) x "
            f"{planned['prompts']} prompts: {planned['value']:.4f} (80% power, 5% level; control seed SD "
            f"{planned['seed_sd']:.4f}, residual SD {planned['residual_sd']:.4f}); target {MDD_TARGET} -> "
            f"{'PASS' if planned['value'] <= MDD_TARGET else 'FAIL'}")


def report(result: dict, cores: str) -> None:
    print(f"\nconfig {result['name']}, --cores {cores}, in {result['workdir']}")
    print(f"{'stage':<20}{'jobs':>6}{'total s':>10}{'mean s':>9}")
    for stage, seconds in sorted(result["per_stage"].items(), key=lambda item: -sum(item[1])):
        print(f"{stage:<20}{len(seconds):>6}{sum(seconds):>10.1f}{sum(seconds) / len(seconds):>9.1f}")
    job_seconds = sum(sum(s) for s in result["per_stage"].values())
    run_s = result["run_s"]
    print(f"{'sum of job times':<26}{job_seconds:>10.1f}  (jobs overlap on {cores} cores)")
    print(f"whole run: {run_s:.1f} s = {run_s / 60:.1f} min; target {RUN_TARGET_S / 60:.0f} min: "
          f"{run_s / RUN_TARGET_S:.2f}x of target -> {'PASS' if run_s <= RUN_TARGET_S else 'FAIL'}")
    print(f"dry run on the finished run: {result['dry_s']:.1f} s, nothing to do: {result['nothing_to_do']}; "
          f"target {DRY_RUN_TARGET_S} s -> "
          f"{'PASS' if result['nothing_to_do'] and result['dry_s'] <= DRY_RUN_TARGET_S else 'FAIL'}")
    print(mdd_line(result))
    if result["verdict"].get("sentence"):
        print(result["verdict"]["sentence"])


def side_by_side(first: dict, second: dict) -> None:
    """The trade between two budgets, measured in one session on one machine."""
    print(f"\nside by side ({first['name']} vs {second['name']}):")
    stages = sorted(set(first["per_stage"]) | set(second["per_stage"]))
    print(f"{'':<26}{first['name']:>18}{second['name']:>18}{'ratio':>8}")
    for stage in stages:
        a, b = (sum(r["per_stage"].get(stage, [])) for r in (first, second))
        ja, jb = (len(r["per_stage"].get(stage, [])) for r in (first, second))
        ratio = f"{b / a:.2f}" if a else "-"
        print(f"{stage + ' s (jobs)':<26}{f'{a:.1f} ({ja})':>18}{f'{b:.1f} ({jb})':>18}{ratio:>8}")
    print(f"{'whole run s':<26}{first['run_s']:>18.1f}{second['run_s']:>18.1f}{second['run_s'] / first['run_s']:>8.2f}")
    mdds = [(r["verdict"].get("detectable_difference") or {}).get("value") for r in (first, second)]
    cells = [f"{m:.4f}" if m is not None else "-" for m in mdds]
    print(f"{'detectable difference':<26}{cells[0]:>18}{cells[1]:>18}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--compare", type=Path, default=None, help="a second config, run after the first")
    parser.add_argument("--cores", default="all")
    parser.add_argument("--keep", type=Path, default=None, help="run here instead of a temporary directory")
    args = parser.parse_args()
    print(f"workflow benchmark on {cpu_model()}")
    root = args.keep or Path(tempfile.mkdtemp(prefix="prefdisco-bench-"))
    results = []
    for index, configfile in enumerate(c for c in (args.configfile, args.compare) if c is not None):
        result = run_workflow(configfile, args.cores, root / f"{index}-{configfile.stem}")
        if result is None:
            return 1
        report(result, args.cores)
        results.append(result)
    if len(results) == 2:
        side_by_side(*results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
