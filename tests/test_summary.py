"""Summary table: ranking by fitness, failed candidates last with their error, CSV and Markdown output."""

from __future__ import annotations

import copy
import subprocess
import sys

import pandas as pd
import pytest

from prefdisco.stages.summary import (
    COLUMNS,
    error_headline,
    main,
    markdown_table,
    run_summary_line,
    summary_table,
    write_summary,
)

from conftest import ARCHIVE, REFERENCE


def test_table_ranks_ok_candidates_by_fitness(records):
    table = summary_table(records)
    assert list(table.columns) == COLUMNS
    assert len(table) == len(records)

    ranked = table[table["rank"].notna()]
    ok = sorted((r for r in records if r["status"] == "ok"), key=lambda r: -r["fitness"])
    assert list(ranked["id"]) == [r["id"] for r in ok]
    assert list(ranked["rank"]) == list(range(1, len(ok) + 1))
    assert ranked["fitness"].is_monotonic_decreasing
    assert table.iloc[0]["id"] == "g2-k0"
    assert table.iloc[0]["reward"] == pytest.approx(0.684)
    assert table.iloc[0]["kl_sem"] == pytest.approx(0.53)


def test_table_puts_failed_invalid_and_duplicates_last_with_their_errors(records):
    table = summary_table(records).set_index("id")
    n_ok = sum(r["status"] == "ok" for r in records)
    tail = summary_table(records).iloc[n_ok:]
    assert set(tail["status"]) == {"invalid", "duplicate", "train_failed", "eval_failed"}
    assert tail["rank"].isna().all()
    assert tail.iloc[-1]["status"] == "invalid"

    invalid = table.loc["g1-k1"]
    assert invalid["error"].startswith("signature: expected 5 arguments")
    assert "\n" not in invalid["error"] and "objective contract" not in invalid["error"], "first line only"
    # A traceback's first line is boilerplate; the exception line is kept instead.
    assert table.loc["g2-k1"]["error"] == "RuntimeError: loss became non-finite at step 37 (inf)"
    assert table.loc["g1-k2"]["duplicate_of"] == "g0-k0"
    assert table.loc["g1-k0"]["parents"] == "g0-k0,g0-k1"
    assert table.loc["g1-k0"]["proposer"] == "openai"
    assert table.loc["g0-k0"]["proposer"] == "seed"
    assert table.loc["g0-k0"]["library"] == "DPO"


def test_table_treats_nan_fitness_as_unranked(records):
    records = copy.deepcopy(records)
    best = next(r for r in records if r["id"] == "g2-k0")
    best["fitness"] = float("nan")
    best["metrics"]["reward"] = None
    table = summary_table(records)
    assert table.iloc[0]["id"] == "g1-k0"
    row = table.set_index("id").loc["g2-k0"]
    assert pd.isna(row["rank"]) and pd.isna(row["fitness"]) and pd.isna(row["reward"])


def test_error_headline():
    assert error_headline(None) == ""
    assert error_headline("") == ""
    assert error_headline("\n  first\nsecond") == "first"
    assert error_headline("Traceback (most recent call last):\n  File x\nValueError: bad\n") == "ValueError: bad"


def test_write_summary_csv_and_markdown(records, reference, tmp_path):
    csv_path, md_path = tmp_path / "out" / "summary.csv", tmp_path / "out" / "summary.md"
    table = write_summary(records, csv_path, md_path, reference=reference)

    from_csv = pd.read_csv(csv_path)
    assert list(from_csv.columns) == COLUMNS
    assert list(from_csv["id"]) == list(table["id"])
    assert from_csv["fitness"].iloc[0] == pytest.approx(0.512)

    markdown = md_path.read_text()
    first_line = markdown.splitlines()[2]
    assert "13 candidates (4 seed baselines), 12 valid, 10 trained, 9 evaluated" in first_line
    assert "adaptive_quantile_feedback_loss (g2-k0), fitness 0.5120" in first_line
    assert "Reference reward: 0.3180 ± 0.0140" in first_line
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(records), "header plus one row per candidate"
    assert rows[1].startswith("| 1 | g2-k0 | 2 | adaptive_quantile_feedback_loss |")
    assert "signature: expected 5 arguments" in markdown


def test_summary_line_names_library_objective_and_handles_missing_reference(records):
    winner = [r for r in records if r["id"] in ("g0-k0", "g0-k1")]
    line = run_summary_line(winner, None)
    assert "Best objective: SLiC, hinge_loss (g0-k1), fitness 0.4470" in line
    assert "Reference reward: not available." in line


def test_markdown_escapes_pipes_and_blanks_missing_values():
    table = pd.DataFrame({"a": [1.0, float("nan")], "b": ["x | y", None]})
    text = markdown_table(table)
    assert text.splitlines()[1] == "|---:|---|"
    assert "| 1.0000 | x \\| y |" in text
    assert text.splitlines()[-1] == "|  |  |"


def test_write_summary_without_evaluated_candidates(records, tmp_path):
    failed = [r for r in records if r["status"] != "ok"]
    table = write_summary(failed, tmp_path / "s.csv", tmp_path / "s.md")
    assert table["rank"].isna().all()
    assert "Best objective: none (no evaluated candidates)." in (tmp_path / "s.md").read_text()

    empty = write_summary([], tmp_path / "e.csv", tmp_path / "e.md")
    assert empty.empty and list(empty.columns) == COLUMNS
    assert "0 candidates" in (tmp_path / "e.md").read_text()


def test_cli(tmp_path):
    code = main(["--archive", str(ARCHIVE), "--reference-eval", str(REFERENCE),
                 "--csv", str(tmp_path / "s.csv"), "--markdown", str(tmp_path / "s.md")])
    assert code == 0
    assert "adaptive_quantile_feedback_loss" in (tmp_path / "s.md").read_text()


def test_cli_runs_as_module(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "prefdisco.stages.summary", "--archive", str(ARCHIVE), "--reference-eval", str(REFERENCE),
         "--csv", str(tmp_path / "s.csv"), "--markdown", str(tmp_path / "s.md")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(tmp_path / "s.csv")) == 13


def test_a_replicated_record_shows_the_estimate_its_interval_is_centred_on(records):
    """After the cascade a record's own fitness is its first seed's; the table shows the mean over every seed,
    so a row never reads "0.051 [0.031, 0.101]"."""
    record = copy.deepcopy(next(r for r in records if r["status"] == "ok"))
    record["intervals"] = {
        "fitness": {"mean": 0.0661, "low": 0.0312, "high": 0.1009, "se": 0.0178, "seeds": 2, "prompts": 288},
        "reward": {"mean": 0.0912, "low": 0.07, "high": 0.11, "se": 0.0101, "seeds": 2, "prompts": 288},
        "kl": {"mean": 1.25, "low": 1.0, "high": 1.5, "se": 0.12, "seeds": 2, "prompts": 288},
        "seeds": [0, 1],
    }
    row = summary_table([record]).iloc[0]
    assert record["fitness"] != pytest.approx(0.0661)
    assert (row["fitness"], row["reward"], row["reward_sem"], row["kl"], row["kl_sem"]) == pytest.approx(
        (0.0661, 0.0912, 0.0101, 1.25, 0.12))
    assert row["fitness_low"] <= row["fitness"] <= row["fitness_high"] and row["seeds"] == 2
