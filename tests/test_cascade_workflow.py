"""The cascade end to end on the tiny model: promotion to more seeds, raising fitness.seeds, and the verdict."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tiny_runs import copy_run, snakemake, update_config

pytestmark = pytest.mark.workflow


def planned_outputs(folder: Path, rule: str) -> list[str]:
    """Outputs of the jobs of ``rule`` that a dry run plans."""
    result = snakemake(folder, "-n")
    text = result.stdout + result.stderr
    jobs = re.findall(r"(?:localrule|rule|localcheckpoint|checkpoint) (\w+):\n(?:    .*\n)*?    output: ([^\n]+)", text)
    return sorted(output for name, output in jobs if name == rule)


@pytest.fixture
def cascade_run(tiny_run) -> Path:
    """The shared tiny run (tests/conftest.py): 1 generation, promoted candidates trained at 2 seeds."""
    return tiny_run


def test_promoted_candidates_get_more_seeds_and_say_why(cascade_run):
    results = cascade_run / "results" / "tiny"
    decisions = [d for g in (0, 1) for d in json.loads((results / f"gen{g}" / "promotion.json").read_text())]
    promoted = {d["id"] for d in decisions if d["promoted"]}
    assert promoted, f"nothing promoted: {decisions}"
    final = {r["id"]: r for r in map(json.loads, (results / "archive.jsonl").read_text().splitlines())}
    for decision in decisions:
        g, k = re.fullmatch(r"g(\d+)-k(\d+)", decision["id"]).groups()
        replica = results / f"gen{g}" / f"cand{k}" / "seed1" / "eval.json"
        intervals = final[decision["id"]]["intervals"]
        assert intervals["seeds_reason"].startswith("promoted") == decision["promoted"]
        assert decision["reason"] in intervals["seeds_reason"]
        if final[decision["id"]].get("library_name") == "dpo":  # the control: its row has every control seed
            control_dir = results / "experiments" / "control" / "dpo" / "beta0.1"
            control_seeds = {0} | {int(p.parent.name[4:]) for p in control_dir.glob("seed*/eval.json")}
            assert not decision["promoted"] and intervals["seeds"] == sorted(control_seeds) != [0]
        elif decision["promoted"]:
            assert replica.exists() and intervals["seeds"] == [0, 1]
            assert json.loads((replica.parent / "objective.json").read_text())["training_overrides"]["seed"] == 1
        else:
            assert not replica.exists() and intervals["seeds"] == [0]
    dpo = next(r for r in final.values() if r.get("library_name") == "dpo")
    assert "control objective" in dpo["intervals"]["seeds_reason"]
    for record in final.values():
        if record["status"] == "ok":
            fitness = record["intervals"]["fitness"]
            assert fitness["low"] <= fitness["mean"] <= fitness["high"]
            assert "seeds x held-out prompts" in record["intervals"]["method"]
            # the one-seed archive of the search borrowed the control's seed variance
    generation_archive = [json.loads(line) for line in (results / "gen1" / "archive.jsonl").read_text().splitlines()]
    assert all(r["intervals"]["fitness"]["seed_variance"] == "borrowed" for r in generation_archive if r["status"] == "ok")


def test_verdict_opens_the_summary_and_matches_the_archive(cascade_run):
    results = cascade_run / "results" / "tiny"
    verdict = json.loads((results / "verdict.json").read_text())
    markdown = (results / "summary.md").read_text().splitlines()
    assert markdown[2] == verdict["sentence"]
    assert re.match(r"Verdict: (yes|no|not distinguishable at this budget): ", verdict["sentence"])
    assert verdict["correction"] == "Holm" and "Holm-adjusted" in verdict["sentence"]
    final = {r["id"]: r for r in map(json.loads, (results / "archive.jsonl").read_text().splitlines())}
    family = [r for r in final.values() if r["generation"] >= 1 and r["status"] == "ok"]
    assert verdict["compared"] == len(family)
    if family:
        best = final[verdict["best"]]["intervals"]["vs_control"]
        assert verdict["difference"] == best
        assert f"{best['mean']:+.4f} [{best['low']:+.4f}, {best['high']:+.4f}]" in verdict["sentence"]
        significant = any(r["intervals"]["p_better_holm"] < 0.05 for r in family)
        assert (verdict["answer"] == "yes") == significant


def test_raising_seeds_plans_only_the_new_seed_jobs(cascade_run, tmp_path):
    results = cascade_run / "results" / "tiny"
    promoted = [d["id"] for g in (0, 1) for d in json.loads((results / f"gen{g}" / "promotion.json").read_text())
                if d["promoted"]]
    run = copy_run(cascade_run, tmp_path / "run")
    update_config(run, **{"fitness.seeds": 3})
    trainings = planned_outputs(run, "train")
    assert planned_outputs(run, "final_archive") == ["results/tiny/archive.jsonl, results/tiny/verdict.json"]
    expected = sorted(["results/tiny/experiments/control/dpo/beta0.1/seed2/train.json"]
                      + [f"results/tiny/gen{i[1:].split('-k')[0]}/cand{i.split('-k')[1]}/seed2/train.json"
                         for i in promoted])
    assert [t.split(", ")[0] for t in trainings] == expected
    assert not planned_outputs(run, "promote") and not planned_outputs(run, "archive")
