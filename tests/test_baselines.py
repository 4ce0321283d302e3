"""Tests for the search-baselines table (prefdisco.stages.baselines) on records in the real schema."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from prefdisco.stages.baselines import (
    baselines_table,
    discovery_minus,
    main,
    markdown,
    replicas_by_search,
)
from prefdisco.statistics import paired_difference, seed_variance_of

PROMPTS = 20
KL_PENALTY = 0.0  # fitness = reward, so expected differences are plain arithmetic


def unit(rewards: list[float]) -> dict:
    return {"status": "ok", "metrics": {"reward": sum(rewards) / len(rewards), "kl": 0.0,
                                        "per_prompt": {"reward": rewards, "kl": [0.0] * len(rewards)}}}


def prompts(shift: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [0.1 * p / PROMPTS + shift + rng.gauss(0, 0.01) for p in range(PROMPTS)]


def search(best_id: str, rewards: list[float], extra: list[dict] = ()) -> tuple[list[dict], dict]:
    """A final archive with generation 0, the best discovered candidate and ``extra`` records; and its verdict."""
    seeds = [{"id": "g0-k0", "generation": 0, "library_name": "dpo", "status": "ok", **unit(prompts(0.0, 0))}]
    best = {"id": best_id, "generation": 1, "name": f"loss_{best_id}", "status": "ok", **unit(rewards),
            "intervals": {"fitness": {"mean": sum(rewards) / PROMPTS, "low": 0.0, "high": 1.0, "prompts": PROMPTS},
                          "vs_control": {"mean": 0.01, "low": -0.01, "high": 0.03}}}
    return seeds + [best, *extra], {"answer": "not distinguishable at this budget", "best": best_id}


CONTROL = {0: unit(prompts(0.0, 0)), 1: unit(prompts(0.02, 1))}


def test_discovery_far_ahead_beats_both_baselines_with_holm():
    searches = {"discovery": search("g1-k1", prompts(0.5, 10)),
                "random": search("g1-k0", prompts(0.0, 11), [{"id": "g1-k1", "generation": 1, "status": "invalid"}]),
                "best_of_n": search("g1-k0", prompts(0.1, 12), [{"id": "g1-k1", "generation": 1,
                                                                  "status": "duplicate"}])}
    table, sentence = baselines_table(searches, {}, CONTROL, KL_PENALTY, first_seed=0)
    rows = table.set_index("search")
    assert list(table["search"]) == ["discovery", "random", "best_of_n"]
    assert rows.loc["discovery", "trained"] == 1 and rows.loc["random", "proposed"] == 2
    assert rows.loc["random", "trained"] == 1 and rows.loc["best_of_n", "evaluated"] == 1
    assert rows.loc["random", "discovery_minus_mean"] == pytest.approx(0.5, abs=0.01)
    assert rows.loc["best_of_n", "discovery_minus_mean"] == pytest.approx(0.4, abs=0.01)
    assert (rows.loc[["random", "best_of_n"], "discovery_minus_ci_low"] > 0).all()
    assert rows.loc["random", "comparison"] == "the discovery's best beats random's best"
    assert sentence.startswith("Search vs chance: yes: against random:")
    # Holm over two comparisons: the smaller p doubled, never below the raw one
    assert (rows.loc[["random", "best_of_n"], "p_discovery_better_holm"] < 0.05).all()
    text = markdown(table, sentence)
    assert sentence in text and "| random | 2 | 1 | 1 |" in text and "loss_g1-k1 (g1-k1)" in text


def test_equal_searches_are_not_distinguishable_and_the_difference_is_paired():
    same = prompts(0.2, 20)
    rng = random.Random(21)
    noisy = [v + rng.gauss(0, 0.001) for v in same]
    searches = {"discovery": search("g1-k0", same), "random": search("g1-k1", noisy)}
    table, sentence = baselines_table(searches, {}, CONTROL, KL_PENALTY, first_seed=0)
    row = table.set_index("search").loc["random"]
    # one shared seed: the difference borrows twice the control's seed variance
    borrowed = seed_variance_of([prompts(0.0, 0), prompts(0.02, 1)]).doubled()
    expected = paired_difference({0: same}, {0: noisy}, borrowed)
    assert row["discovery_minus_mean"] == pytest.approx(expected.mean)
    assert row["discovery_minus_ci_low"] == pytest.approx(expected.low)
    assert row["discovery_minus_ci_low"] < 0 < row["discovery_minus_ci_high"]
    assert row["paired_seeds"] == 1 and row["comparison"] == "not distinguishable at this budget"
    assert sentence.startswith("Search vs chance: not shown")


def test_replica_seeds_enter_the_pairing_and_missing_bests_are_said():
    discovery = search("g1-k0", prompts(0.3, 30))
    replicas = {"discovery": {"g1-k0": {1: unit(prompts(0.31, 31))}}, "random": {"g1-k0": {1: unit(prompts(0.0, 32))}}}
    searches = {"discovery": discovery, "random": search("g1-k0", prompts(0.01, 33)),
                "best_of_n": ([discovery[0][0]], {"answer": "no", "best": None})}
    table, sentence = baselines_table(searches, replicas, CONTROL, KL_PENALTY, first_seed=0)
    rows = table.set_index("search")
    assert rows.loc["discovery", "seeds"] == 2 and rows.loc["random", "paired_seeds"] == 2
    assert rows.loc["random", "replica_trainings"] == 1
    assert pd.isna(rows.loc["best_of_n", "best"]) and pd.isna(rows.loc["best_of_n", "discovery_minus_mean"])
    assert "no comparison" in rows.loc["best_of_n", "comparison"] and "against best_of_n: no comparison" in sentence
    assert discovery_minus({0: [1.0]}, {}, {}) is None
    assert "| best_of_n | 0 | 0 | 0 | 0 | none evaluated | 0 |  |  |  |  | no comparison" in markdown(table, sentence)


def test_replicas_are_filed_under_their_search(tmp_path):
    paths = []
    for folder in ("results/r/gen1/cand0/seed1", "results/r/baselines/random/gen1/cand1/seed1",
                   "results/r/gen0/cand0/seed1"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "eval.json").write_text(json.dumps(unit([0.1])))
        paths.append(tmp_path / folder / "eval.json")
    filed = replicas_by_search(paths, {"discovery": tmp_path / "results/r", "random": tmp_path / "results/r/baselines/random"})
    assert set(filed["discovery"]) == {"g1-k0"} and set(filed["random"]) == {"g1-k1"}
    with pytest.raises(ValueError, match="--replicas"):
        replicas_by_search([tmp_path / "eval.json"], {})


def test_entry_point_names_mismatched_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--names", "discovery", "random", "--archives", "a", "--verdicts", "v", "--control", "c",
              "--kl-penalty", "0", "--csv", str(tmp_path / "t.csv"), "--markdown", str(tmp_path / "t.md")])
    assert "must pair up" in capsys.readouterr().err
