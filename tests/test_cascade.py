"""The cascade's pure parts: one-seed intervals against the control, promotion decisions, the verdict."""

from __future__ import annotations

import random

import pytest

from prefdisco.intervals import attach_intervals, control_intervals
from prefdisco.stages.cascade import (
    compare_with_control,
    final_records,
    planned_detectable_difference,
    promotion_decisions,
)


def unit(rewards: list[float]) -> dict:
    return {"status": "ok", "metrics": {"reward": sum(rewards) / len(rewards), "kl": 0.0,
                                        "per_prompt": {"reward": rewards, "kl": [0.0] * len(rewards)}}}


def control_units(rng: random.Random, prompts: list[float], seeds: int = 3, sd_seed: float = 0.02,
                  sd_resid: float = 0.05) -> dict[int, dict]:
    units = {}
    for seed in range(seeds):
        a = rng.gauss(0, sd_seed)
        units[seed] = unit([p + a + rng.gauss(0, sd_resid) for p in prompts])
    return units


def archive_record(rid: str, generation: int, rewards: list[float], library: str | None = None) -> dict:
    return {"id": rid, "generation": generation, "candidate": int(rid.split("-k")[1]), "name": rid,
            "library_name": library, "status": "ok", "fitness": sum(rewards) / len(rewards), **unit(rewards)}


@pytest.fixture
def setting():
    rng = random.Random(0)
    prompts = [rng.gauss(0.1, 0.3) for _ in range(200)]
    control = control_units(rng, prompts)
    records = [archive_record("g0-k0", 0, [p + rng.gauss(0, 0.05) for p in prompts], "dpo"),
               archive_record("g1-k0", 1, [p + 0.2 + rng.gauss(0, 0.05) for p in prompts]),  # clearly better
               archive_record("g1-k1", 1, [p - 0.2 + rng.gauss(0, 0.05) for p in prompts])]  # clearly worse
    attach_intervals(records, control, 0.0, "dpo", 0)
    return control, records, prompts


def test_one_seed_records_get_borrowed_intervals_and_a_paired_difference(setting):
    control, records, _ = setting
    better = records[1]["intervals"]
    assert better["seeds"] == [0] and better["fitness"]["seed_variance"] == "borrowed"
    assert better["vs_control"]["low"] > 0.1 and better["vs_control"]["high"] < 0.3
    assert better["vs_control"]["se"] < better["fitness"]["se"]  # pairing removes prompt difficulty


def test_promotion_decisions_promote_the_possible_best_and_skip_the_control(setting):
    control, records, _ = setting
    decisions = {d["id"]: d for d in promotion_decisions(records, 1, control_intervals(control, 0.0, "dpo"), "dpo")}
    assert decisions["g1-k0"]["promoted"] and "incumbent" in decisions["g1-k0"]["reason"]
    assert not decisions["g1-k1"]["promoted"] and "ruled out" in decisions["g1-k1"]["reason"]
    gen0 = promotion_decisions(records, 0, control_intervals(control, 0.0, "dpo"), "dpo")
    assert gen0 == [{"id": "g0-k0", "candidate": 0, "promoted": False,
                     "reason": "the control objective (dpo): trained at every seed as the control"}]


def test_verdict_yes_no_and_not_distinguishable(setting):
    control, records, prompts = setting
    verdict = compare_with_control(records, "dpo")
    assert verdict["answer"] == "yes" and verdict["best"] == "g1-k0" and verdict["compared"] == 2
    assert verdict["sentence"].startswith("Verdict: yes: g1-k0 (g1-k0) beats DPO")
    assert "Holm-adjusted one-sided p" in verdict["sentence"]
    assert records[1]["intervals"]["p_better_holm"] < 0.05 <= records[2]["intervals"]["p_better_holm"]

    worse_only = [records[0], records[2]]
    assert compare_with_control(worse_only, "dpo")["answer"] == "no"

    rng = random.Random(5)
    close = [records[0], archive_record("g1-k0", 1, [p + rng.gauss(0, 0.05) for p in prompts])]
    attach_intervals(close, control, 0.0, "dpo", 0)
    verdict = compare_with_control(close, "dpo")
    assert verdict["answer"] == "not distinguishable at this budget"
    assert verdict["sentence"].startswith("Verdict: not distinguishable at this budget: ")

    assert compare_with_control([records[0]], "dpo")["answer"] == "no"  # nothing discovered


def test_planned_detectable_difference_shrinks_with_seeds():
    rng = random.Random(1)
    prompts = [rng.gauss(0, 0.3) for _ in range(100)]
    control = control_units(rng, prompts, seeds=40, sd_seed=0.0, sd_resid=0.1)
    one, four = (planned_detectable_difference(control, 0.0, n) for n in (1, 4))
    # no seed effect: se = sqrt(2 * 0.01 / (n * 100)); MDD = 2.80 se
    assert one["value"] == pytest.approx(2.8 * (2 * 0.01 / 100) ** 0.5, rel=0.25)
    assert four["value"] == pytest.approx(one["value"] / 2)  # both components scale with 1/n
    assert planned_detectable_difference({0: control[0]}, 0.0, 3) is None


def test_the_final_archive_estimates_the_control_from_every_control_seed(setting):
    """Every difference is taken against all of the control's seeds; its own row must be estimated from them
    too, not from the first seed its archive record holds."""
    control, records, _ = setting
    final = {r["id"]: r for r in final_records(records, {}, {}, {}, control, 0.0, "dpo", 0)}
    row = final["g0-k0"]["intervals"]
    assert row["seeds"] == [0, 1, 2] and row["vs_control"] is None
    every_seed = sum(u["metrics"]["reward"] for u in control.values()) / len(control)
    assert row["fitness"]["mean"] == pytest.approx(every_seed)
    assert final["g1-k0"]["intervals"]["seeds"] == [0]  # a candidate not promoted keeps its one seed
