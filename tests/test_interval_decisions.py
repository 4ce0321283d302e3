"""Decisions on the interval-aware estimate: the prompt line, the records a prompt shows, the parents bred."""

from __future__ import annotations

import random

from prefdisco.proposers.evolution import PREFERENCE_SPACE, _usable_parents, selection_score
from prefdisco.proposers.prompts import fitness_text, outcome_line, select_context


def record(rid: str, fitness: float, low: float | None = None, high: float | None = None,
           versus: tuple[float, float, float] | None = None) -> dict:
    intervals = None
    if low is not None:
        intervals = {"control": "dpo", "fitness": {"mean": fitness, "low": low, "high": high},
                     "vs_control": None if versus is None else dict(zip(("mean", "low", "high"), versus))}
    return {"id": rid, "status": "ok", "fitness": fitness, "intervals": intervals, "library_name": "dpo",
            "generation": 1, "code": "", "name": rid}


def test_prompt_shows_the_fitness_interval_and_the_difference_to_the_control():
    shown = record("a", 0.169, 0.14, 0.198, (0.028, -0.015, 0.071))
    assert fitness_text(shown) == "Fitness: 0.169 [0.140, 0.198]; vs DPO +0.028 [-0.015, +0.071]"
    assert outcome_line(shown) == fitness_text(shown)
    assert outcome_line(record("b", 0.1234)) == "Fitness: 0.1234"  # an archive without intervals
    assert fitness_text(record("c", 0.2, 0.1, 0.3)) == "Fitness: 0.200 [0.100, 0.300]"


def test_best_records_and_parents_are_chosen_by_the_lower_bound():
    lucky = record("lucky", 0.30, 0.05, 0.55)  # highest mean, one noisy seed
    steady = record("steady", 0.20, 0.17, 0.23)
    plain = record("plain", 0.10)
    archive = [lucky, steady, plain]
    assert [r["id"] for r in select_context(archive, best_n=1, recent_m=0)] == ["steady"]
    assert selection_score(lucky) == 0.05 and selection_score(plain) == 0.10
    parents = {p.id: p.fitness for p in _usable_parents(archive, PREFERENCE_SPACE)}
    assert parents == {"lucky": 0.05, "steady": 0.17, "plain": 0.10}
    wins = [select_context(archive, best_n=1, recent_m=0, rng=random.Random(i), tournament_size=3)[0]["id"]
            for i in range(5)]
    assert set(wins) == {"steady"}


def test_fig3_best_so_far_follows_the_lower_bound_and_draws_intervals(tmp_path):
    from prefdisco.stages.figures import plot_fitness_over_generations

    records = [{**record("g0-k0", 0.20, 0.17, 0.23), "generation": 0, "candidate": 0},
               {**record("g1-k0", 0.30, 0.05, 0.55), "generation": 1, "candidate": 0, "library_name": None},
               {**record("g2-k0", 0.25, 0.21, 0.29), "generation": 2, "candidate": 0, "library_name": None}]
    info = plot_fitness_over_generations(records, tmp_path / "fig.png")
    assert info["best_so_far_ids"] == ["g0-k0", "g0-k0", "g2-k0"]  # the lucky g1-k0 never leads
    assert info["best_so_far"] == [0.20, 0.20, 0.25]
    assert info["intervals"]["g1-k0"] == (0.05, 0.55)
    assert (tmp_path / "fig.png").read_bytes().startswith(b"\x89PNG")
