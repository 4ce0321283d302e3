"""End-to-end Snakemake runs of the classification family: the digits preset, tiny (1 generation x 2 candidates,
2 epochs), and dry runs of the paper's CIFAR-10 preset."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
PNG = b"\x89PNG\r\n\x1a\n"


def snakemake(folder: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                             str(folder), "--configfile", str(config), "--cores", "2", *args],
                            capture_output=True, text=True, timeout=1200, env=ENV)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def write_config(folder: Path, **discovery) -> Path:
    config = yaml.safe_load((REPO / "tests" / "workflow" / "classification_config.yaml").read_text())
    config["discovery"].update(discovery)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def outputs_with_mtimes(folder: Path) -> dict[str, float]:
    results = folder / "results" / "tiny"
    return {str(p.relative_to(results)): p.stat().st_mtime for p in results.rglob("*")
            if p.is_file() and p.suffix in (".json", ".pt") and "logs" not in p.parts and "transfer" not in p.parts}


@pytest.mark.workflow
def test_digits_preset_end_to_end_and_extension_recomputes_nothing(tmp_path):
    folder = tmp_path / "run"
    snakemake(folder, write_config(folder))
    results = folder / "results" / "tiny"
    records = [json.loads(line) for line in (results / "gen1" / "archive.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["g0-k0", "g0-k1", "g1-k0", "g1-k1"]
    assert [r["library_name"] for r in records[:2]] == ["cross_entropy", "focal"]
    for record in records:
        assert record["status"] in {"ok", "invalid", "duplicate", "train_failed"}
        if record["status"] == "ok":
            metrics = record["metrics"]
            assert record["fitness"] == metrics["val_accuracy"] and 0.1 < record["fitness"] <= 1.0
            assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["val_ci_low"] <= record["fitness"]
            assert "(logits, targets)" in record["code"] and record["fingerprint"]
    assert all(r["status"] == "ok" for r in records[:2])  # the seeds were trained and scored for real
    with (results / "transfer.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["objective"] for r in rows][-1] == "cross_entropy" and {r["model"] for r in rows} == {"cnn"}
    assert all(int(r["seeds"]) == 2 and r["interval_method"] == "t95_over_seeds" for r in rows)
    for figure in ("fig2_left.png", "fig2_right.png"):
        assert (results / "figures" / figure).read_bytes()[:8] == PNG

    before = outputs_with_mtimes(folder)
    snakemake(folder, write_config(folder, generations=2))
    after = outputs_with_mtimes(folder)
    assert {k: after[k] for k in before} == before  # generations 0 and 1: nothing recomputed
    assert any(key.startswith("gen2/") for key in after)
    extended = (results / "gen2" / "archive.jsonl").read_text().splitlines()
    assert len(extended) == 6


def test_cifar10_paper_preset_plans_the_paper_jobs(tmp_path):
    preset = REPO / "configs" / "paper" / "cifar10.yaml"
    config = yaml.safe_load(preset.read_text())
    assert config["classification"]["training"]["model"] == "resnet18"
    assert config["discovery"]["proposer"]["options"]["model"] == "gpt-4"
    plan = snakemake(tmp_path, preset, "-n").stdout
    generations = config["discovery"]["generations"]
    for rule in ("propose", "validate", "archive"):  # one per generation, the seed archive included
        assert re.search(rf"^{rule}\s+{generations + 1}$", plan, re.MULTILINE), plan[-2000:]
    assert f"results/cifar10_paper/gen{generations}/archive.jsonl" in plan
    assert "classification_figures" in plan and "transfer_selection" in plan
    # a transfer unit: the final archive's selection, retrained for 100 epochs on one GPU of its own
    unit = "results/cifar10_paper/transfer/efficientnetb0/cross_entropy/seed2/eval.json"
    plan = snakemake(tmp_path, preset, "-n", unit).stdout
    train = plan[plan.index("rule classification_train:"):]
    train = train[:train.index("rule classification_evaluate")]
    assert "unit=transfer/efficientnetb0/cross_entropy/seed2" in train
    assert "gpu=1" in train and "mem_mb=32000" in train and "runtime=240" in train
    assert "rule classification_data:" in plan and f"gen{generations}/archive.jsonl" in plan
    # the dataset comes through the real download code into the configured folder
    data = plan[plan.index("rule classification_data:"):]
    assert "results/cifar10_paper/data/classification.pt" in data
