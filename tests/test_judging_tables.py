"""Held-out selection from the archive, Table 2 (CSV and Markdown), and the figures: the MT-Bench radar (Fig. 4)
and the LC win-rate bars (Fig. 1, right), the latter also from the paper's published numbers."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest

from prefdisco.judging.figures import plot_lc_win_rate, plot_mt_bench_radar
from prefdisco.judging.tables import TABLE2_COLUMNS, select_held_out, table2, table2_markdown

PAPER = Path(__file__).parent / "fixtures" / "judging" / "paper_alpacaeval2.csv"


def test_selection_holds_out_seeds_and_the_best(records):
    selection = select_held_out(records, top_k=2)
    evaluated = sorted((r for r in records if r["status"] == "ok"), key=lambda r: -r["fitness"])
    best = {r["id"] for r in evaluated[:2]}
    seeds = {r["id"] for r in records if r["generation"] == 0 and r.get("training") and r["status"] in ("ok", "eval_failed")}
    assert {s["id"] for s in selection} == best | seeds
    assert [s["id"] for s in selection] == [r["id"] for r in records if r["id"] in best | seeds]  # archive order
    entry = next(s for s in selection if s["id"] == "g0-k0")
    assert entry["unit"] == "gen0/cand0" and entry["objective"] == "DPO"
    assert {s["id"] for s in select_held_out(records, top_k=1, include_seeds=False)} == {evaluated[0]["id"]}


def test_seeds_without_fitness_are_still_held_out(records):
    records = copy.deepcopy(records)
    for r in records:
        if r["generation"] == 0:
            r.update(status="eval_failed", fitness=None, training={"steps": 2})
    ids = {s["id"] for s in select_held_out(records, top_k=0)}
    assert ids == {r["id"] for r in records if r["generation"] == 0}


def metrics_record(model_id, reference, win, lc, status="ok"):
    return {"model_id": model_id, "reference": reference, "status": status, "win_rate": win, "standard_error": 1.0,
            "lc_win_rate": lc, "lc_standard_error": 0.5, "avg_length": 1500, "n_total": 805,
            "judge": {"calls": 805, "total_cost_usd": 2.5}, "error": None if status == "ok" else "non-finite weights"}


def test_table2():
    selection = [{"id": "g0-k0", "unit": "gen0/cand0", "objective": "DPO"},
                 {"id": "g3-k1", "unit": "gen3/cand1", "objective": "g3-k1 log_ratio_modulated_loss"}]
    metrics = [metrics_record("gen0-cand0", "gpt4_turbo", 11.2, 12.8), metrics_record("gen0-cand0", "sft", 78.7, 63.3),
               metrics_record("gen3-cand1", "gpt4_turbo", None, None, status="eval_failed")]
    frame = table2(selection, metrics)
    assert list(frame.columns) == TABLE2_COLUMNS
    assert frame[["id", "reference"]].values.tolist() == [["g0-k0", "gpt4_turbo"], ["g0-k0", "sft"],
                                                          ["g3-k1", "gpt4_turbo"]]
    markdown = table2_markdown(frame)
    lines = markdown.splitlines()
    assert lines[0] == ("| Objective | vs gpt4_turbo: win rate (%) | vs gpt4_turbo: LC win rate (%) | "
                        "vs sft: win rate (%) | vs sft: LC win rate (%) |")
    assert lines[2] == "| DPO | 11.20 ± 1.00 | 12.80 ± 0.50 | 78.70 ± 1.00 | 63.30 ± 0.50 |"
    assert lines[3] == "| g3-k1 log_ratio_modulated_loss | - | - | - | - |"
    assert "3 evaluations, judge cost 7.5000 USD" in markdown


def test_lc_bars_from_the_papers_numbers(tmp_path):
    paper = pd.read_csv(PAPER)  # the published Table 2 rows share Table 2's columns
    drawn = plot_lc_win_rate(paper, tmp_path / "fig1.png")
    assert drawn["references"] == ["sft", "gpt4_turbo"]
    assert drawn["bars"]["gpt4_turbo"][0] == ("aqfl", pytest.approx(15.551))  # the paper's best vs GPT-4 Turbo
    assert [name for name, _ in drawn["bars"]["sft"]][:2] == ["lrml", "aqfl"]
    assert (tmp_path / "fig1.png").read_bytes().startswith(b"\x89PNG")
    empty = plot_lc_win_rate(pd.DataFrame(columns=TABLE2_COLUMNS), tmp_path / "empty.png")
    assert empty["references"] == [] and (tmp_path / "empty.png").stat().st_size > 1000


def test_radar(records, tmp_path):
    records = copy.deepcopy(records)
    categories = ["writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"]
    for i, r in enumerate(records):
        if r["status"] == "ok":
            r["metrics"]["mt_bench"] = {"categories": {c: 5 + (i + j) % 4 for j, c in enumerate(categories)}}
    reference = {"mt_bench": {"categories": {c: 4.0 for c in categories}}}
    drawn = plot_mt_bench_radar(records, reference, tmp_path / "radar.png", top=1)
    seeds = [r for r in records if r["generation"] == 0 and r["status"] == "ok"]
    assert drawn["categories"] == categories
    assert len(drawn["series"]) == len(seeds) + 1 + 1 and drawn["series"]["SFT reference"]["math"] == 4.0
    assert (tmp_path / "radar.png").read_bytes().startswith(b"\x89PNG")
    nothing = plot_mt_bench_radar([], None, tmp_path / "none.png")
    assert nothing["series"] == {} and (tmp_path / "none.png").is_file()
