"""Provenance and `python -m prefdisco.stages.verify`: a damaged or inconsistent record is named, and the printed command
rebuilds it and what was built from it, leaving every other file's bytes and modification time as they were."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from prefdisco.io import provenance, sha256_file, write_json, write_jsonl
from prefdisco.stages.verify import main as verify_main
from prefdisco.stages.verify import verify_run

from tiny_runs import ENV, SNAKEMAKE, copy_run, snakemake


def small_run(workdir: Path) -> Path:
    """A run folder by hand: data, one candidate's train and eval records, and an archive built from them. Run from
    ``workdir``: records name their inputs relative to the folder Snakemake runs in."""
    run = workdir / "results" / "r"
    write_jsonl("results/r/data/preferences.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}])
    write_json("results/r/gen0/cand0/train.json", {"id": "g0-k0", "status": "ok",
                                                  "inputs": provenance("results/r/data/preferences.jsonl")})
    write_json("results/r/gen0/cand0/eval.json", {"id": "g0-k0", "status": "ok", "fitness": 0.5,
                                                 "inputs": provenance("results/r/gen0/cand0/train.json")})
    write_jsonl("results/r/gen0/archive.jsonl", [{"id": "g0-k0", "inputs": provenance(
        "results/r/gen0/cand0/train.json", "results/r/gen0/cand0/eval.json")}])
    (run / "gen0" / "cand0" / "policy").mkdir()
    (run / "gen0" / "cand0" / "policy" / "config.json").write_text("{not a record")  # model files are not records
    return run


def test_an_intact_run_verifies(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = small_run(tmp_path)
    assert verify_run(run, tmp_path) == []
    assert verify_main([str(run)]) == 0
    assert "records parse and match" in capsys.readouterr().out


def test_a_damaged_record_is_named_once_with_the_command_that_rebuilds_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = small_run(tmp_path)
    evaluation = run / "gen0" / "cand0" / "eval.json"
    evaluation.write_text(evaluation.read_text()[:20])
    assert verify_main([str(run)]) == 1
    out = capsys.readouterr().out
    assert "results/r/gen0/cand0/eval.json: damaged (not valid JSON)" in out
    assert out.count("eval.json") == 2  # the finding and the command; not again as the archive's input
    assert "snakemake --cores all --forcerun results/r/gen0/cand0/eval.json" in out


def test_an_input_changed_after_its_record_was_built_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = small_run(tmp_path)
    pairs = run / "data" / "preferences.jsonl"
    recorded = sha256_file(pairs)
    pairs.write_text(pairs.read_text().replace('"a"', '"c"'))  # still valid JSON: only the hash tells
    problems = verify_run(run, tmp_path)
    assert [p.path for p in problems] == ["results/r/data/preferences.jsonl"]
    assert problems[0].message.startswith("results/r/gen0/cand0/train.json: built from results/r/data/preferences"
                                          f".jsonl with sha256 {recorded[:12]}")
    pairs.unlink()
    assert "which is missing" in verify_run(run, tmp_path)[0].message


def files_with_mtimes(run: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(run)): (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*")
            if p.is_file() and "logs" not in p.parts and "benchmarks" not in p.parts}


@pytest.mark.workflow
def test_damaged_record_in_a_real_run_is_rebuilt_with_what_depends_on_it_and_nothing_else(tmp_path, tiny_run):
    copy_run(tiny_run, tmp_path)  # the shared run, with its experiments and baselines: every record is verified
    run = tmp_path / "results" / "tiny"
    records = [json.loads(line) for line in (run / "gen1" / "archive.jsonl").read_text().splitlines()]
    assert all(r["inputs"] for r in records)
    assert records[2]["inputs"]["results/tiny/gen1/cand0/eval.json"] == sha256_file(run / "gen1/cand0/eval.json")
    assert json.loads((run / "gen1" / "cand0" / "eval.json").read_text())["inputs"][
        "results/tiny/gen1/cand0/train.json"] == sha256_file(run / "gen1/cand0/train.json")
    clean = subprocess.run([sys.executable, "-m", "prefdisco.stages.verify", "results/tiny"], cwd=tmp_path, env=ENV,
                           capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    # Truncated with its old modification time kept: Snakemake alone would never notice.
    damaged = run / "gen1" / "cand0" / "eval.json"
    stat = damaged.stat()
    damaged.write_text(damaged.read_text()[:100])
    os.utime(damaged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "Nothing to be done" in snakemake(tmp_path, "-n").stdout
    before = files_with_mtimes(run)

    result = snakemake(tmp_path, "verify", check=False)  # the rule: fails, and says why
    assert result.returncode != 0
    report = (run / "logs" / "verify.log").read_text()
    assert "results/tiny/gen1/cand0/eval.json: damaged (not valid JSON)" in report
    command = report.strip().splitlines()[-1].strip()
    assert command == "snakemake --cores all --forcerun results/tiny/gen1/cand0/eval.json"

    subprocess.run([*SNAKEMAKE, "--directory", str(tmp_path), *shlex.split(command)[3:]], check=True, env=ENV,
                   capture_output=True, text=True, timeout=900)
    after = files_with_mtimes(run)
    changed = sorted(k for k in before if after.get(k) != before[k])
    depends = {"gen1/cand0/eval.json", "gen1/archive.jsonl", "gen1/promotion.json", "archive.jsonl", "verdict.json",
               "summary.csv", "summary.md",
               "figures/fitness_over_generations.png", "figures/objective_shapes.png", "figures/reward_vs_kl.png"}
    assert "gen1/cand0/eval.json" in changed and set(changed) <= depends, changed
    assert json.loads(damaged.read_text())["status"] in {"ok", "eval_failed"}
    clean = subprocess.run([sys.executable, "-m", "prefdisco.stages.verify", "results/tiny"], cwd=tmp_path, env=ENV,
                           capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout
    assert "Nothing to be done" in snakemake(tmp_path, "-n").stdout
