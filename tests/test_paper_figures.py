"""The paper's figures and tables from hand-made result files in the agreed schemas."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prefdisco.stages import paper_figures as pf
from prefdisco.paper_numbers import PAPER_LABEL, paper_table


def experiments_csv(path):
    rows = []
    for objective, shift in (("dpo", 0.0), ("lrml", 0.1), ("slic", -0.1)):
        for beta in (0.05, 0.1, 0.5):
            rows.append({"experiment": "imdb", "objective": objective, "beta": beta, "seeds": 2, "evaluated": 2,
                         "n_prompts": 8, "reward_mean": 0.5 + shift + beta, "reward_ci_low": 0.45 + shift + beta,
                         "reward_ci_high": 0.55 + shift + beta, "kl_mean": 1 / beta, "kl_ci_low": 0.9 / beta,
                         "kl_ci_high": 1.1 / beta, "reference_reward": 0.4, "interval_method": "bootstrap seeds x prompts"})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_frontier_draws_ours_and_the_papers_apart(tmp_path):
    table = pf.read_experiments(experiments_csv(tmp_path / "experiments.csv"))
    pf.frontiers(table, ["dpo", "lrml"], tmp_path / "fig5.png", pf.caption_of("r", table))
    assert (tmp_path / "fig5.png").stat().st_size > 0
    written = pd.read_csv(tmp_path / "fig5.csv")
    assert set(written["source"]) == {"ours", PAPER_LABEL}
    ours = written[written["source"] == "ours"]
    assert len(ours) == 6 and ours["reward_ci_low"].notna().all()
    theirs = written[written["source"] == PAPER_LABEL]
    paper = paper_table("imdb")
    expected = paper[(paper["objective"] == "lrml") & (paper["beta"] == 0.1)]["reward"].mean()
    assert theirs[(theirs["objective"] == "lrml") & (theirs["beta"] == 0.1)]["reward_mean"].iloc[0] == pytest.approx(expected)
    assert "betas [0.05, 0.1, 0.5]" in pf.caption_of("r", table) and "bootstrap" in pf.caption_of("r", table)


def test_loss_shapes_match_dpo_closed_form(tmp_path):
    data = pf.objective_shapes(["dpo", "lrml"], 0.05, tmp_path / "fig6.png")
    dpo = data[data["objective"] == "dpo"]
    rho = dpo["rho"].to_numpy()
    assert np.allclose(dpo["loss"], np.log1p(np.exp(-0.05 * rho)))
    assert np.allclose(dpo["gradient"], -0.05 / (1 + np.exp(0.05 * rho)))
    grid = pf.beta_grid(["dpo", "lrml"], [0.05, 0.5], tmp_path / "grid.png")
    assert set(grid["beta"]) == {0.05, 0.5} and (tmp_path / "grid.csv").exists()


def test_training_curves_keep_every_logged_step(tmp_path):
    history = [{"loss": 0.7 - 0.1 * s, "rewards/accuracies": 0.5, "step": s} for s in (1, 2, 3)]
    history += [{"eval_loss": 0.69, "eval_rewards/accuracies": 0.6, "step": 2}]
    records = [{"id": f"lite/{o}/beta0.1/seed0", "options": {"seed": 0, "learning_rate": 1e-3}, "history": history}
               for o in ("dpo", "lrml")]
    data = pf.training_curves(records, tmp_path / "fig7.png", pf.caption_of("r", records=records))
    assert len(data[(data["metric"] == "loss") & (data["objective"] == "lrml")]) == 3
    assert data[data["metric"] == "eval_loss"]["value"].tolist() == [0.69, 0.69]


def test_histogram_share_between_the_extrema(tmp_path):
    low, high = pf.lrml_extrema()
    assert low < 0 < high
    values = [low - 1, low / 2, high / 2, high + 1]
    summary = pf.log_ratio_histogram({"unit": "u", "beta": 0.1, "values": values}, tmp_path / "fig14.png", "c")
    assert summary["share_between_extrema"] == 0.5
    assert json.loads((tmp_path / "fig14.json").read_text())["n_pairs"] == 4


def test_table1_and_tldr_table_keep_the_papers_column_apart(tmp_path):
    evaluations = [{"id": "table1/dpo/beta0.05/seed0", "status": "ok", "metrics": {"reward": 7.1, "reward_sem": 0.1}}]
    table = pf.table1(evaluations, tmp_path / "table1.csv", "c")
    assert table["mt_bench"].tolist() == [7.1] and table[f"mt_bench {PAPER_LABEL}"].tolist() == [7.8875]
    assert "7.100 ± 0.100" in (tmp_path / "table1.md").read_text()
    metrics = [{"model_id": "experiments-tldr-dpo-beta0.05-seed0", "reference": "human", "win_rate": 60.0,
                "standard_error": 2.0, "n_total": 10}]
    tldr = pf.tldr_table(metrics, tmp_path / "tldr.csv", "c")
    assert tldr[f"win_rate {PAPER_LABEL}"].tolist() == [88.272] and tldr["win_rate"].tolist() == [60.0]
