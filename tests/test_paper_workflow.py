"""`snakemake paper` end to end on a tiny paper-lite run, and dry runs of every preset under configs/paper/."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tiny_runs import ENV, SNAKEMAKE, snakemake

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow


def test_every_paper_preset_plans_its_study(tmp_path):
    expected = {"imdb.yaml": 11 * 6 * 10, "tldr.yaml": 11, "discovery.yaml": 11}
    for preset, trainings in expected.items():
        result = subprocess.run([*SNAKEMAKE, "--directory", str(tmp_path), "-n", "experiments", "--configfile",
                                 str(REPO / "configs" / "paper" / preset)],
                                capture_output=True, text=True, env=ENV, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        counts = dict(line.split()[:2] for line in result.stdout.splitlines()
                      if line.strip() and line.split()[0] == "train" and len(line.split()) == 2)
        assert int(counts["train"]) == trainings, (preset, counts)


def test_paper_lite_path_renders_every_artifact(tmp_path, tiny_model_dir):
    config = yaml.safe_load((REPO / "configs" / "paper_lite.yaml").read_text())
    config["reference"]["source"] = str(tiny_model_dir)
    config["run"] = "lite"
    config["task"]["options"].update(train_prompts=12, heldout_prompts=4, samples_per_prompt=2, min_reward_gap=0.0,
                                     max_new_tokens=6)
    config["training"].update(max_steps=3, batch_size=4, trainable_layers=None, device="cpu", precision="fp32",
                              eval_pairs=4, eval_steps=1, max_length=64)
    config["experiments"] = {"lite": {"objectives": ["dpo", "slic", "lrml"], "betas": [0.1, 0.5], "seeds": [0, 1]}}
    config["threads"] = {"preferences": 1, "train": 1, "evaluate": 1}
    config["resources"] = {}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "experiments", "paper", "--configfile", str(tmp_path / "config.yaml"))
    out = tmp_path / "results" / "lite" / "paper"
    for name in ("fig5_lrml_vs_dpo", "fig5_lrml_vs_slic", "fig8_frontiers", "appendix_frontiers",
                 "fig7_training_curves", "fig14_log_ratios"):
        assert (out / f"{name}.png").stat().st_size > 0, name
    experiments = pd.read_csv(tmp_path / "results" / "lite" / "experiments.csv")
    fig8 = pd.read_csv(out / "fig8_frontiers.csv")
    ours = fig8[fig8["source"] == "ours"]
    assert len(ours) == 6 and sorted(ours["objective"].unique()) == ["dpo", "lrml", "slic"]
    merged = ours.merge(experiments, on=["objective", "beta"], suffixes=("", "_x"))
    assert (merged["reward_mean"] == merged["reward_mean_x"]).all()
    assert (fig8["source"] == "paper (Lu et al. 2024)").any()
    curves = pd.read_csv(out / "fig7_training_curves.csv")
    assert {"loss", "eval_loss"} <= set(curves["metric"]) and set(curves["objective"]) == {"dpo", "slic", "lrml"}
    assert curves[curves["metric"] == "loss"]["step"].nunique() == 3  # every logged step, not only the last
    histogram = json.loads((out / "fig14_log_ratios.json").read_text())
    assert histogram["n_pairs"] > 0 and 0.0 <= histogram["share_between_extrema"] <= 1.0
    shapes = pd.read_csv(tmp_path / "results" / "paper" / "fig6_objective_shapes.csv")
    assert set(shapes["objective"]) == {"dpo", "slic", "lrml", "aqfl", "padll"} and set(shapes["beta"]) == {0.05}
    manifest = (tmp_path / "results" / "paper" / "MANIFEST.md").read_text()
    assert "results/lite/paper/fig14_log_ratios.png" in manifest and "| built |" in manifest
    assert "snakemake --cores all experiments paper --configfile configs/paper/imdb.yaml" in manifest
