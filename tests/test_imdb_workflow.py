"""The IMDb study through the rules: an imdb_preference-like parquet folder, a tiny local sentiment classifier as the
reward model, and 2 objectives x 1 beta x 1 seed trained, evaluated and summarised into experiments.csv."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from test_paper_tasks import imdb_folder, tiny_classifier
from tiny_runs import snakemake

pytestmark = pytest.mark.workflow


def test_imdb_experiments_through_the_rules(tmp_path, tiny_model_dir):
    classifier = tiny_classifier(tmp_path / "classifier")
    config = {
        "run": "imdb", "seed": 0, "reference": {"source": str(tiny_model_dir)},
        "task": {"name": "imdb", "options": {"dataset": str(imdb_folder(tmp_path / "imdb")), "heldout_prompts": 4,
                                             "reward_model": str(classifier), "max_new_tokens": 6, "batch_size": 4}},
        "training": {"beta": 0.1, "learning_rate": 1.0e-3, "batch_size": 4, "max_steps": 2, "max_length": 64,
                     "trainable_layers": None, "device": "cpu", "precision": "fp32", "eval_pairs": 0},
        "fitness": {"kl_penalty": 0.0},
        "discovery": {"generations": 0, "population": 1, "seed_objectives": ["dpo"],
                      "proposer": {"backend": "evolution"}},
        "experiments": {"imdb": {"objectives": ["dpo", "lrml"], "betas": [0.1], "seeds": [0]}},
        "threads": {"preferences": 1, "train": 1, "evaluate": 1},
        "resources": {},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "experiments", "--configfile", str(tmp_path / "config.yaml"))
    run = tmp_path / "results" / "imdb"
    pairs = [json.loads(line) for line in (run / "data" / "preferences.jsonl").read_text().splitlines()]
    assert len(pairs) == 10 and pairs[0]["prompt"] == "This movie number 0 was"  # the "Same" row has no preference
    assert json.loads((run / "data" / "heldout_prompts.json").read_text()) == [f"I watched film {i} and" for i in range(4)]

    table = pd.read_csv(run / "experiments.csv")
    assert sorted(table["objective"]) == ["dpo", "lrml"] and set(table["beta"]) == {0.1}
    assert (table["seeds"] == 1).all() and (table["evaluated"] == 1).all() and (table["n_prompts"] == 4).all()
    for _, row in table.iterrows():
        evaluation = json.loads((run / "experiments" / "imdb" / row["objective"] / "beta0.1" / "seed0" / "eval.json")
                                .read_text())
        metrics = evaluation["metrics"]
        assert evaluation["status"] == "ok" and metrics["kl_kind"] == "token-level"
        rewards = metrics["per_prompt"]["reward"]
        assert len(rewards) == 4 and all(0.0 <= r <= 1.0 for r in rewards)  # P(POSITIVE) from the local classifier
        assert row["reward_mean"] == pytest.approx(sum(rewards) / 4)
        assert row["reward_ci_low"] <= row["reward_mean"] <= row["reward_ci_high"]
        assert row["kl_ci_low"] <= row["kl_mean"] <= row["kl_ci_high"]
    reference = json.loads((run / "reference" / "eval.json").read_text())
    assert table["reference_reward"].iloc[0] == pytest.approx(reference["metrics"]["reward"])
