"""Real Snakemake runs on the tiny model for the workflow tests: the config, the command, and copies of a run.

Every job of a run is a fresh Python process that imports torch, transformers and TRL (seconds each on a 2-core
machine), so a run costs what its job count costs. The tests therefore share runs: ``tiny_run`` (tests/conftest.py)
is one finished discovery run with the cascade, the experiments and the baselines, read by every test that only
reads; a test that changes a run (more generations, a damaged record) works on a copy (:func:`copy_run`), which
Snakemake sees as up to date because the copy keeps every modification time and its metadata.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2"]
TIMEOUT = 900
# Jobs run `python -m prefdisco...`: the interpreter running the tests must be the one they find on PATH.
ENV = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
# the shared run's Snakemake output, kept beside it for the tests that count its jobs
RUN_LOG = "snakemake.out"
CHAT_FIXTURES = REPO / "tests" / "fixtures" / "judging"
# AlpacaEval's annotator reads the first token's log-probabilities: the scripted judge prefers "m" at 0.7
JUDGE_LOGPROBS = {"m": math.log(0.7), "M": math.log(0.3)}


def write_config(folder: Path, model_dir: Path, **overrides) -> Path:
    """tests/workflow/tiny_config.yaml with the tiny model and dotted-key overrides, as ``folder/config.yaml``."""
    config = yaml.safe_load((REPO / "tests" / "workflow" / "tiny_config.yaml").read_text())
    config["reference"]["source"] = str(model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(_override(config, overrides)))
    return path


def write_chat_config(folder: Path, model_dir: Path, judge_url: str) -> Path:
    """tests/workflow/chat_config.yaml with the tiny model, the judging fixtures and the judge's URL."""
    config = yaml.safe_load((REPO / "tests" / "workflow" / "chat_config.yaml").read_text())
    config["reference"]["source"] = str(model_dir)
    config["task"]["options"]["dataset"] = str(CHAT_FIXTURES / "dpo_mix_tiny.jsonl")
    config["benchmarks"]["mt_bench"]["data_dir"] = str(CHAT_FIXTURES / "mt_bench")
    config["benchmarks"]["alpaca_eval"]["data_dir"] = str(CHAT_FIXTURES / "alpaca_eval")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return set_judge(folder, judge_url)


def set_judge(folder: Path, judge_url: str) -> Path:
    """Point a chat run's MT-Bench judge and AlpacaEval annotator at ``judge_url``."""
    return update_config(folder, **{"benchmarks.mt_bench.judge.base_url": judge_url,
                                    "benchmarks.alpaca_eval.annotator.base_url": judge_url})


def scripted_judge(request: dict) -> tuple[int, str]:
    """A judge that always answers in the benchmarks' formats: an MT-Bench rating that differs per answer, and for
    AlpacaEval (a request for log-probabilities) the token whose log-probabilities JUDGE_LOGPROBS give."""
    if request.get("logprobs"):
        return 200, "m"
    return 200, f"Rating: [[{3 + len(request['messages'][-1]['content']) % 7}]]"


def update_config(folder: Path, **overrides) -> Path:
    """Change dotted keys of a run's own ``config.yaml`` (a copied run keeps every other setting it ran with)."""
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(_override(yaml.safe_load(path.read_text()), overrides)))
    return path


def _override(config: dict, overrides: dict) -> dict:
    for dotted, value in overrides.items():
        section = config
        *parents, key = dotted.split(".")
        for parent in parents:
            section = section[parent]
        section[key] = value
    return config


def snakemake(folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*SNAKEMAKE, "--directory", str(folder), *args], capture_output=True, text=True,
                            timeout=TIMEOUT, env=ENV)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def read_archive(folder: Path, generation: int) -> list[dict]:
    path = folder / "results" / "tiny" / f"gen{generation}" / "archive.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def outputs_with_mtimes(folder: Path) -> dict[str, float]:
    results = folder / "results" / "tiny"
    return {str(p.relative_to(results)): p.stat().st_mtime for p in results.rglob("*.json*") if "logs" not in p.parts}


# What every run of the tiny config builds the same way, whatever its proposer: the reference and its evaluation, the
# preference data with the reference's log-probs, and the control's units at its further seeds.
SHARED_STAGES = ("reference", "data", "experiments/control")


def start_from_shared_stages(run: Path, folder: Path) -> None:
    """Give a new run in ``folder`` (the tiny config, any proposer) the shared stages of the finished ``run``, with
    their modification times: Snakemake finds them up to date and runs only the discovery the test is about."""
    for stage in SHARED_STAGES:
        shutil.copytree(run / "results" / "tiny" / stage, folder / "results" / "tiny" / stage, symlinks=True)


def copy_run(run: Path, destination: Path) -> Path:
    """A copy of a finished run that a test may change: files, folders and Snakemake's metadata, every modification
    time kept (shutil.copy2), so Snakemake finds it as up to date as the original."""
    shutil.copytree(run, destination, symlinks=True, dirs_exist_ok=True)
    return destination
