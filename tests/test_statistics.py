"""Intervals over seeds x prompts, paired differences, the promotion rule and Holm's correction, on known answers."""

from __future__ import annotations

import math
import random

import pytest

from prefdisco.intervals import per_prompt
from prefdisco.stages.experiments import COLUMNS, experiments_table
from prefdisco.statistics import (
    Estimate,
    SeedVariance,
    estimate,
    holm,
    minimum_detectable_difference,
    p_value_greater,
    paired_difference,
    per_prompt_means,
    promotions,
    seed_variance_of,
    variance_components,
)


def simulate(rng: random.Random, seeds: int, prompts: int, mu: float, sd_seed: float, sd_prompt: float,
             sd_resid: float, prompt_effects: list[float] | None = None) -> list[list[float]]:
    b = prompt_effects or [rng.gauss(0, sd_prompt) for _ in range(prompts)]
    rows = []
    for _ in range(seeds):
        a = rng.gauss(0, sd_seed)
        rows.append([mu + a + b[p] + rng.gauss(0, sd_resid) for p in range(prompts)])
    return rows


def test_variance_components_recover_a_simulated_normal_with_known_variances():
    rng = random.Random(1)
    totals = [0.0, 0.0, 0.0]
    reps = 200
    for _ in range(reps):
        s, p, e = variance_components(simulate(rng, 8, 40, 0.3, 0.05, 0.2, 0.1))
        totals = [totals[0] + s, totals[1] + p, totals[2] + e]
    seed, prompt, resid = (t / reps for t in totals)
    assert seed == pytest.approx(0.05 ** 2, rel=0.2)
    assert prompt == pytest.approx(0.2 ** 2, rel=0.1)
    assert resid == pytest.approx(0.1 ** 2, rel=0.05)


def test_interval_covers_the_true_mean_95_percent_of_the_time_with_both_noise_sources():
    rng = random.Random(2)
    mu, sd_seed, sd_prompt, sd_resid, seeds, prompts = 0.2, 0.03, 0.15, 0.1, 4, 50
    true_se = math.sqrt(sd_seed ** 2 / seeds + sd_prompt ** 2 / prompts + sd_resid ** 2 / (seeds * prompts))
    hits, ses = 0, []
    reps = 600
    for _ in range(reps):
        result = estimate(simulate(rng, seeds, prompts, mu, sd_seed, sd_prompt, sd_resid))
        hits += result.low <= mu <= result.high
        ses.append(result.se)
    # the seed component has 3 df, so a normal interval runs a little short; not far
    assert 0.88 <= hits / reps <= 0.98
    assert sum(ses) / reps == pytest.approx(true_se, rel=0.15)


def test_one_seed_borrows_the_seed_variance_and_counts_it():
    rng = random.Random(3)
    rows = simulate(rng, 1, 64, 0.1, 0.0, 0.2, 0.05)
    prompts_only = estimate(rows)
    borrowed = estimate(rows, SeedVariance(0.03 ** 2, 2))
    assert prompts_only.seed_variance == "none" and borrowed.seed_variance == "borrowed"
    assert borrowed.se == pytest.approx(math.sqrt(prompts_only.se ** 2 + 0.03 ** 2))
    assert borrowed.mean == prompts_only.mean


def test_several_seeds_pool_with_the_borrowed_seed_variance_by_degrees_of_freedom():
    rows = [[0.0, 1.0], [1.0, 2.0]]  # seed effect 0.5 apart, no interaction: seed component 0.5
    own = estimate(rows)
    seed_var, _, resid = variance_components(rows)
    assert seed_var == pytest.approx(0.5) and resid == pytest.approx(0.0)
    pooled = estimate(rows, SeedVariance(0.0, 1))
    assert pooled.seed_variance == "pooled"
    assert pooled.se ** 2 == pytest.approx(own.se ** 2 - 0.5 / 2 + 0.25 / 2)


def test_degenerate_cases():
    flat = estimate([[0.4] * 5] * 3)
    assert (flat.mean, flat.low, flat.high, flat.se) == (pytest.approx(0.4), pytest.approx(0.4),
                                                          pytest.approx(0.4), pytest.approx(0.0, abs=1e-12))
    single = estimate([[0.7]])
    assert single.mean == 0.7 and math.isnan(single.low) and math.isnan(single.high)
    with pytest.raises(ValueError, match="same held-out prompts"):
        estimate([[1.0, 2.0], [1.0]])
    with pytest.raises(ValueError, match="finite"):
        estimate([[1.0, math.nan]])
    with pytest.raises(ValueError, match="at least one seed"):
        estimate([])


def test_paired_difference_cancels_prompt_difficulty():
    rng = random.Random(4)
    prompt_effects = [rng.gauss(0, 0.3) for _ in range(64)]
    control = {s: row for s, row in enumerate(simulate(rng, 3, 64, 0.1, 0.02, 0.0, 0.05, prompt_effects))}
    candidate = {s: row for s, row in enumerate(simulate(rng, 3, 64, 0.13, 0.02, 0.0, 0.05, prompt_effects))}
    alone = estimate(list(candidate.values()))
    difference = paired_difference(candidate, control)
    assert difference.se < alone.se / 2
    assert difference.mean == pytest.approx(alone.mean - estimate(list(control.values())).mean)
    # pairing uses only the seeds both have
    one_seed = paired_difference({0: candidate[0]}, control, SeedVariance(0.02 ** 2, 2).doubled())
    assert one_seed.seeds == 1 and one_seed.seed_variance == "borrowed"
    with pytest.raises(ValueError, match="no training seed in common"):
        paired_difference({5: candidate[0]}, control)


def test_control_seed_variance_needs_two_seeds():
    assert seed_variance_of([[1.0, 2.0]]) is None
    assert seed_variance_of([[1.0, 2.0], [2.0, 3.0], [3.0, 4.0]]) == SeedVariance(pytest.approx(1.0), 2)


def _e(mean: float, half: float) -> Estimate:
    return Estimate(mean, mean - half, mean + half, half / 1.96, 1, 10, "borrowed")


def test_promotion_rule_promotes_what_could_still_be_the_best():
    estimates = {"control": _e(0.10, 0.02), "a": _e(0.15, 0.02), "b": _e(0.12, 0.02), "c": _e(0.05, 0.02),
                 "d": Estimate(0.3, math.nan, math.nan, math.nan, 1, 1, "none")}
    decisions = promotions(estimates, ["a", "b", "c", "d"])
    assert decisions["a"][0] and "incumbent" in decisions["a"][1]  # highest lower bound 0.13
    assert decisions["b"][0] and "0.1400 >= incumbent a's lower bound 0.1300" in decisions["b"][1]
    assert not decisions["c"][0] and "ruled out" in decisions["c"][1]
    assert decisions["d"][0], "an undefined interval cannot rule a candidate out"
    assert promotions({"x": Estimate(0.1, math.nan, math.nan, math.nan, 1, 1, "none")}, ["x"])["x"][0]


def test_holm_adjusts_step_down_and_keeps_input_order():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]) == [0.5]
    assert holm([]) == []
    assert holm([0.9, 0.3]) == pytest.approx([0.9, 0.6])  # monotone
    assert holm([0.9, 0.8]) == [1.0, 1.0]  # capped at 1


def test_p_value_and_minimum_detectable_difference():
    assert p_value_greater(Estimate(1.96, 0, 3.92, 1.0, 1, 1, "own")) == pytest.approx(0.025, abs=1e-4)
    assert p_value_greater(Estimate(0.1, 0.1, 0.1, 0.0, 1, 1, "own")) == 0.0
    assert p_value_greater(Estimate(0.1, math.nan, math.nan, math.nan, 1, 1, "none")) == 1.0
    assert minimum_detectable_difference(0.01) == pytest.approx(0.028, abs=1e-3)  # (1.96 + 0.84) x se


def test_per_prompt_means_average_each_prompts_samples_in_prompt_order():
    assert per_prompt_means([0, 1, 0, 2], [1.0, 5.0, 3.0, 4.0], 3) == [2.0, 5.0, 4.0]
    assert math.isnan(per_prompt_means([0], [1.0], 2)[1])


def _eval(unit: str, reward: list[float], kl: list[float], status: str = "ok") -> dict:
    return {"id": unit, "status": status,
            "metrics": {"reward": sum(reward) / len(reward), "kl": sum(kl) / len(kl),
                        "per_prompt": {"reward": reward, "kl": kl}}}


def test_experiments_table_has_the_agreed_columns_and_intervals_over_seeds_and_prompts():
    evaluations = [_eval("grid/dpo/beta0.1/seed0", [0.1, 0.3, 0.2], [1.0, 2.0, 3.0]),
                   _eval("grid/dpo/beta0.1/seed1", [0.2, 0.4, 0.3], [1.0, 2.0, 3.0]),
                   _eval("grid/dpo/beta0.1/seed2", [0.0], [0.0], status="train_failed"),
                   _eval("grid/slic/beta0.5/seed0", [0.5, 0.7, 0.6], [0.5, 0.5, 0.5])]
    table = experiments_table(evaluations, {"metrics": {"reward": 0.05}})
    assert list(table.columns) == COLUMNS
    dpo = table.set_index("objective").loc["dpo"]
    assert (dpo["seeds"], dpo["evaluated"], dpo["n_prompts"]) == (3, 2, 3)
    assert dpo["reward_mean"] == pytest.approx(0.25)
    assert dpo["reward_ci_low"] < 0.25 < dpo["reward_ci_high"]
    assert dpo["kl_mean"] == pytest.approx(2.0)
    assert dpo["reference_reward"] == 0.05 and "seeds x" in dpo["interval_method"]
    slic = table.set_index("objective").loc["slic"]
    assert slic["beta"] == 0.5 and "prompts only" in slic["interval_method"]
    assert slic["kl_ci_low"] == slic["kl_ci_high"] == pytest.approx(0.5)


def test_per_prompt_fitness_subtracts_the_kl_penalty_prompt_by_prompt():
    record = _eval("x", [0.1, 0.3], [1.0, 2.0])
    assert per_prompt(record, "fitness", 0.1) == pytest.approx([0.0, 0.1])
    judged = {"metrics": {"kl": 2.0, "per_prompt": {"reward": [5.0, None, 7.0], "kl": [1.0, 3.0]}}}
    assert per_prompt(judged, "fitness", 0.5) == [4.0, None, 6.0]
    assert per_prompt({"metrics": {}}, "reward") is None
