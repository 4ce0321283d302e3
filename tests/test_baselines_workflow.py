"""The baselines target end to end on the tiny model: random search and "sample N, keep the best" beside the
discovery run, sharing its stages, and the table that compares the bests."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from tiny_runs import RUN_LOG

pytestmark = pytest.mark.workflow

SEARCHES = {"discovery": "", "random": "baselines/random/", "best_of_n": "baselines/best_of_n/"}


@pytest.fixture
def baselines_run(tiny_run) -> tuple[Path, str]:
    """The shared tiny run (tests/conftest.py), whose one Snakemake call built the discovery, the experiments and
    the baselines together, and that call's log."""
    return tiny_run, (tiny_run / RUN_LOG).read_text()


def jobs_of(log: str, rule: str) -> int:
    return len(re.findall(rf"^(?:local)?(?:rule|checkpoint) {rule}:$", log, flags=re.MULTILINE))


def test_baselines_share_the_runs_stages(baselines_run):
    folder, log = baselines_run
    results = folder / "results" / "tiny"
    # one reference, one preference data set, one set of reference log-probs, one control unit per extra seed (the
    # other experiment is the run's seed_spread)
    for rule in ("reference", "preferences", "reference_logps"):
        assert jobs_of(log, rule) == 1, f"{rule}: {jobs_of(log, rule)} jobs"
    assert jobs_of(log, "experiment_objective") == 2
    assert log.count("output: results/tiny/experiments/control/dpo/beta0.1/seed1/objective.json") == 1
    # generation 0 proposed once (the run's); each search proposed its own generation 1
    assert jobs_of(log, "propose") == 4
    for name in ("random", "best_of_n"):
        search = results / "baselines" / name
        assert not any((search / shared).exists() for shared in ("reference", "data", "experiments", "gen0"))
        archive = [json.loads(line) for line in (search / "archive.jsonl").read_text().splitlines()]
        assert [r["id"] for r in archive[:2]] == ["g0-k0", "g0-k1"]
        assert archive[:2] == [json.loads(line) for line in
                               (results / "archive.jsonl").read_text().splitlines()[:2]]
        trained = [p.parent.name for p in (search / "gen1").glob("cand*/train.json")]
        assert trained, f"{name} trained nothing"
    random_proposals = json.loads((results / "baselines/random/gen1/proposals.json").read_text())
    assert {p["proposer"]["backend"] for p in random_proposals} == {"random"}
    assert all(p["parents"] == [] for p in random_proposals)
    best_of_n = json.loads((results / "baselines/best_of_n/gen1/proposals.json").read_text())
    assert {p["proposer"]["backend"] for p in best_of_n} == {"evolution"}
    assert list(best_of_n[0]["inputs"]) == ["results/tiny/gen0/archive.jsonl"]


def test_table_compares_each_search_best_with_intervals(baselines_run):
    folder, _ = baselines_run
    results = folder / "results" / "tiny"
    rows = list(csv.DictReader((results / "baselines.csv").open()))
    assert [r["search"] for r in rows] == list(SEARCHES)
    markdown = (results / "baselines.md").read_text()
    sentence = markdown.splitlines()[2]
    assert re.match(r"Search vs chance: (yes|not shown): against random: .*; against best_of_n: ", sentence)
    for row in rows:
        search = results / SEARCHES[row["search"]]
        verdict = json.loads((search / "verdict.json").read_text())
        records = {r["id"]: r for r in map(json.loads, (search / "archive.jsonl").read_text().splitlines())}
        searched = [r for r in records.values() if r["generation"] >= 1]
        assert int(row["proposed"]) == len(searched) == 2
        assert int(row["evaluated"]) == sum(r["status"] == "ok" for r in searched)
        assert row["best"] == (verdict["best"] or "")
        if verdict["best"]:
            fitness = records[verdict["best"]]["intervals"]["fitness"]
            assert float(row["fitness_mean"]) == pytest.approx(fitness["mean"])
            assert float(row["fitness_ci_low"]) == pytest.approx(fitness["low"])
            assert int(row["seeds"]) == len(records[verdict["best"]]["intervals"]["seeds"])
        if row["search"] != "discovery" and row["discovery_minus_mean"]:
            low, mean, high = (float(row[f"discovery_minus_{k}"]) for k in ("ci_low", "mean", "ci_high"))
            assert low <= mean <= high
            assert f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]" in sentence
            assert (row["comparison"] == "the discovery's best beats " + row["search"] + "'s best") == (
                float(row["p_discovery_better_holm"]) < 0.05)
            if row["seeds"] == rows[0]["seeds"] == "1":
                # one common seed on the same prompts: the paired mean is the difference of the two means
                assert mean == pytest.approx(float(rows[0]["fitness_mean"]) - float(row["fitness_mean"]), abs=1e-9)
