"""Figures: the PNGs are real images, and what each function reports it drew matches the archive.

The fixture archive (tests/fixtures/archive/archive.jsonl) holds the four seed baselines in generation 0 and
discovered candidates in generations 1-2: an invalid one, a duplicate, a train_failed, an eval_failed and an ok
candidate without a validation curve. Its loss/gradient curves were computed once with torch from the library
objectives' own source (autograd for d loss / d rho, beta = 0.1, 121 points of beta*rho in [-10, 10]).
"""

from __future__ import annotations

import copy
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from prefdisco.stages.figures import main, plot_fitness_over_generations, plot_objective_shapes, plot_reward_vs_kl

from conftest import ARCHIVE, REFERENCE


def assert_png(path: Path, min_width: int = 600, min_height: int = 400) -> None:
    """A valid, non-blank PNG of a sensible size."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= min_width and height >= min_height, (width, height)
    assert width <= 4000 and height <= 4000, (width, height)
    pixels = mpimg.imread(path)
    assert pixels.shape[:2] == (height, width)
    assert float(np.std(pixels)) > 0.01, f"{path} looks blank"


def ok_fitness(records: list[dict]) -> dict[str, float]:
    return {
        r["id"]: r["fitness"]
        for r in records
        if r["status"] == "ok" and isinstance(r["fitness"], (int, float)) and math.isfinite(r["fitness"])
    }


# --- fitness over generations --------------------------------------------------------------------------------------


def test_fitness_figure_best_so_far_is_running_max_of_ok_fitness(records, tmp_path):
    path = tmp_path / "fitness.png"
    info = plot_fitness_over_generations(records, path)
    assert_png(path)

    assert info["generations"] == [0, 1, 2]
    expected, running = [], -math.inf
    for generation in info["generations"]:
        scores = [r["fitness"] for r in records if r["generation"] == generation and r["id"] in ok_fitness(records)]
        running = max([running, *scores])
        expected.append(running)
    assert info["best_so_far"] == pytest.approx(expected)
    assert all(a <= b for a, b in zip(info["best_so_far"], info["best_so_far"][1:])), "best-so-far must not drop"
    assert info["best_so_far"][-1] == pytest.approx(max(ok_fitness(records).values()))


def test_fitness_figure_plots_each_ok_candidate_once_near_its_generation(records, tmp_path):
    info = plot_fitness_over_generations(records, tmp_path / "fitness.png")
    fitness = ok_fitness(records)
    assert set(info["points"]) == set(fitness)
    assert info["n_points"] == len(fitness) == 9
    by_id = {r["id"]: r for r in records}
    for record_id, (x, y) in info["points"].items():
        assert abs(x - by_id[record_id]["generation"]) < 0.5, "jitter must stay inside the generation's column"
        assert y == pytest.approx(fitness[record_id])
    # invalid + train_failed + eval_failed are x markers at the bottom; the duplicate is counted apart.
    assert info["n_failed"] == 3
    assert info["n_duplicates"] == 1
    assert info["baseline_labels"] == ["DPO", "SLiC", "IPO", "KTO"]


def test_fitness_figure_best_so_far_holds_when_a_generation_is_worse(records, tmp_path):
    # Without g2-k0 and g2-k3, generation 2's best (0.461) is below generation 1's (0.507).
    records = [r for r in records if r["id"] not in ("g2-k0", "g2-k3")]
    info = plot_fitness_over_generations(records, tmp_path / "fitness.png")
    assert info["best_so_far"] == pytest.approx([0.447, 0.507, 0.507])


def test_fitness_figure_skips_nan_and_none_fitness(records, tmp_path):
    records = copy.deepcopy(records)
    by_id = {r["id"]: r for r in records}
    by_id["g2-k0"]["fitness"] = float("nan")  # was the best
    by_id["g1-k0"]["fitness"] = None
    info = plot_fitness_over_generations(records, tmp_path / "fitness.png")
    assert "g2-k0" not in info["points"] and "g1-k0" not in info["points"]
    assert info["n_failed"] == 5, "ok records without a fitness are shown with the failed ones"
    assert info["best_so_far"][-1] == pytest.approx(by_id["g2-k3"]["fitness"])
    assert all(v is not None and math.isfinite(v) for v in info["best_so_far"])


def test_fitness_figure_single_generation(records, tmp_path):
    path = tmp_path / "fitness.png"
    info = plot_fitness_over_generations([r for r in records if r["generation"] == 0], path)
    assert_png(path)
    assert info["generations"] == [0]
    assert info["best_so_far"] == [pytest.approx(max(r["fitness"] for r in records if r["generation"] == 0))]


def test_fitness_figure_without_evaluated_candidates(records, tmp_path):
    path = tmp_path / "fitness.png"
    info = plot_fitness_over_generations([r for r in records if r["status"] != "ok"], path)
    assert_png(path)
    assert info["n_points"] == 0
    assert info["best_so_far"] == [None, None]

    empty = tmp_path / "empty.png"
    info = plot_fitness_over_generations([], empty)
    assert_png(empty)
    assert info["generations"] == [] and info["n_points"] == 0


# --- objective shapes ---------------------------------------------------------------------------------------------------


def test_shapes_figure_draws_dpo_and_top3_with_curves_in_fitness_order(records, tmp_path):
    path = tmp_path / "shapes.png"
    info = plot_objective_shapes(records, path, top=3)
    assert_png(path)
    # g2-k3 ranks third by fitness but has no curve, so the third shape is the next one down (g2-k2).
    assert info["ids"] == ["g2-k0", "g1-k0", "g2-k2"]
    # The seed DPO baseline, not the generation-1 duplicate that also carries library_name "dpo".
    assert info["baseline_id"] == "g0-k0"
    assert info["labels"][0] == "DPO (baseline)"
    assert info["labels"][1].startswith("g2-k0 adaptive_quantile_feedback_loss")
    assert info["labels"][2].startswith("LRML (DiscoPOP) [g1-k0]")
    assert info["n_points"] == {"g0-k0": 121, "g2-k0": 121, "g1-k0": 121, "g2-k2": 121}
    assert info["yscale"] == {"loss": "linear", "grad": "linear"}


def test_shapes_figure_without_dpo_baseline(records, tmp_path):
    records = [r for r in records if r.get("library_name") != "dpo"]
    info = plot_objective_shapes(records, tmp_path / "shapes.png", top=2)
    assert info["baseline_id"] is None
    assert info["ids"] == ["g2-k0", "g1-k0"]
    assert len(info["labels"]) == 2


def test_shapes_figure_draws_baseline_once_when_it_is_in_the_top(records, tmp_path):
    path = tmp_path / "shapes.png"
    info = plot_objective_shapes(records, path, top=20)
    assert_png(path)
    assert "g0-k0" in info["ids"]
    assert len(info["labels"]) == len(info["ids"]) == 8, "8 ok candidates with curves, DPO drawn once"
    # IPO's squared loss reaches ~1e4 where KTO stays below 1: the panels switch to symlog.
    assert info["yscale"] == {"loss": "symlog", "grad": "symlog"}


def test_shapes_figure_tolerates_none_in_curves_and_broken_curves(records, tmp_path):
    records = copy.deepcopy(records)
    by_id = {r["id"]: r for r in records}
    by_id["g2-k0"]["validation"]["curve"]["loss"][5] = None
    by_id["g1-k0"]["validation"]["curve"]["grad"] = [0.0]  # length mismatch: not a usable curve
    info = plot_objective_shapes(records, tmp_path / "shapes.png", top=3)
    assert info["ids"] == ["g2-k0", "g2-k2", "g0-k1"]


def test_shapes_figure_without_candidates(tmp_path):
    path = tmp_path / "shapes.png"
    info = plot_objective_shapes([], path)
    assert_png(path)
    assert info["ids"] == [] and info["baseline_id"] is None


# --- reward vs KL ----------------------------------------------------------------------------------------------------


def test_reward_kl_figure_points_reference_and_annotations(records, reference, tmp_path):
    path = tmp_path / "reward_kl.png"
    info = plot_reward_vs_kl(records, reference, path, annotate=3)
    assert_png(path)
    assert sorted(info["ids"]) == sorted(ok_fitness(records))
    assert info["n_points"] == 9
    assert info["reference"] == (0.0, pytest.approx(reference["reward"]))
    fitness = ok_fitness(records)
    assert info["annotated"] == sorted(fitness, key=fitness.get, reverse=True)[:3]


def test_reward_kl_figure_skips_missing_metrics(records, reference, tmp_path):
    records = copy.deepcopy(records)
    by_id = {r["id"]: r for r in records}
    by_id["g0-k2"]["metrics"]["kl"] = None
    by_id["g1-k3"]["metrics"]["reward_sem"] = float("nan")  # point kept, without its error bar
    info = plot_reward_vs_kl(records, None, tmp_path / "reward_kl.png")
    assert "g0-k2" not in info["ids"] and "g1-k3" in info["ids"]
    assert info["reference"] is None


def test_reward_kl_figure_without_candidates(reference, tmp_path):
    path = tmp_path / "reward_kl.png"
    info = plot_reward_vs_kl([], reference, path)
    assert_png(path)
    assert info["n_points"] == 0 and info["reference"] is not None


# --- CLI -------------------------------------------------------------------------------------------------------------


def test_cli_writes_all_three_figures(tmp_path):
    outputs = [tmp_path / "figs" / name for name in ("fitness.png", "shapes.png", "reward_kl.png")]
    code = main([
        "--archive", str(ARCHIVE), "--reference-eval", str(REFERENCE),
        "--fitness-figure", str(outputs[0]), "--shapes-figure", str(outputs[1]),
        "--reward-kl-figure", str(outputs[2]), "--top", "2",
    ])
    assert code == 0
    for path in outputs:
        assert_png(path)
    assert not list((tmp_path / "figs").glob(".*")), "no temporary files left behind"


def test_cli_runs_as_module(tmp_path):
    outputs = [tmp_path / name for name in ("f.png", "s.png", "k.png")]
    result = subprocess.run(
        [sys.executable, "-m", "prefdisco.stages.figures", "--archive", str(ARCHIVE), "--reference-eval", str(REFERENCE),
         "--fitness-figure", str(outputs[0]), "--shapes-figure", str(outputs[1]),
         "--reward-kl-figure", str(outputs[2])],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for path in outputs:
        assert_png(path)
