"""End-to-end Snakemake runs of the classification family: the digits preset, tiny (1 generation x 2 candidates,
2 epochs, the control cross_entropy and promoted candidates at 2 seeds), and dry runs of the paper's CIFAR-10
preset."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
import tiny_runs
from tiny_runs import REPO

PNG = b"\x89PNG\r\n\x1a\n"


def snakemake(folder: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    return tiny_runs.snakemake(folder, "--configfile", str(config), *args)


def write_config(folder: Path, **discovery) -> Path:
    config = yaml.safe_load((REPO / "tests" / "workflow" / "classification_config.yaml").read_text())
    config["discovery"].update(discovery)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def outputs_with_mtimes(folder: Path) -> dict[str, float]:
    """Every unit's, generation's and the data's files; not what follows the final generation (the final archive,
    verdict.json, the transfer stage), which extending the run rightly rebuilds."""
    results = folder / "results" / "tiny"
    return {str(p.relative_to(results)): p.stat().st_mtime for p in results.rglob("*")
            if p.is_file() and p.suffix in (".json", ".pt") and "logs" not in p.parts and "transfer" not in p.parts
            and p.parent != results}


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

    # noise-aware fitness: every evaluated record has its interval over training seeds x validation examples and its
    # paired difference to the control (cross_entropy, the schema's default), whose seed 0 is generation 0's unit
    control_units = [results / "gen0" / "cand0", results / "experiments" / "control" / "cross_entropy" / "seed1"]
    control = [json.loads((unit / "eval.json").read_text()) for unit in control_units]
    n_val = len(control[0]["metrics"]["per_example"]["val_correct"])
    assert json.loads((control_units[1] / "train.json").read_text())["options"]["seed"] == 1
    assert control[0]["metrics"]["per_example"] != control[1]["metrics"]["per_example"]  # really another seed
    for record in records:
        if record["status"] == "ok":
            intervals = record["intervals"]
            assert intervals["control"] == "cross_entropy" and intervals["over"] == "validation examples"
            assert intervals["examples"] == n_val and intervals["seeds"] == [0]
            fitness, difference = intervals["fitness"], intervals["vs_control"]
            assert fitness["mean"] == pytest.approx(record["fitness"]) and fitness["low"] < fitness["mean"] < fitness["high"]
            assert fitness["seed_variance"] == "borrowed" and difference["low"] <= difference["mean"] <= difference["high"]
    assert records[0]["intervals"]["vs_control"]["mean"] == 0.0  # the control against its own first seed
    # the control's units are shared: every generation's archive was built from the same ones
    for g in (0, 1):
        inputs = set(json.loads((results / f"gen{g}" / "archive.jsonl").read_text().splitlines()[-1])["inputs"])
        assert {str(unit.relative_to(folder) / "eval.json") for unit in control_units} <= inputs, inputs

    # the cascade: promoted candidates got their second seed; the final archive and the verdict use every seed
    final = {r["id"]: r for r in map(json.loads, (results / "archive.jsonl").read_text().splitlines())}
    promoted = [d for g in (0, 1) for d in json.loads((results / f"gen{g}" / "promotion.json").read_text())
                if d["promoted"]]
    replicas = 0
    for decision in promoted:
        generation, candidate = decision["id"][1:].split("-k")
        unit = results / f"gen{generation}" / f"cand{candidate}" / "seed1"
        assert json.loads((unit / "train.json").read_text())["options"]["seed"] == 1
        trained = json.loads((unit / "eval.json").read_text())["status"] == "ok"  # an evolved loss may diverge
        assert final[decision["id"]]["intervals"]["seeds"] == ([0, 1] if trained else [0])
        replicas += trained
    assert replicas >= 1, promoted
    assert final["g0-k0"]["intervals"]["seeds"] == [0, 1]  # the control's row: both control seeds
    verdict = json.loads((results / "verdict.json").read_text())
    assert verdict["control"] == "cross_entropy" and verdict["correction"] == "Holm"
    summary = (results / "summary.md").read_text().splitlines()
    assert summary[2] == verdict["sentence"] and summary[2].startswith("Verdict: ")
    assert "validation examples" in summary[2] and "prompts" not in "\n".join(summary)
    if verdict["best"]:
        best = final[verdict["best"]]["intervals"]
        assert verdict["difference"] == best["vs_control"] and f"{best['fitness']['mean']:.4f}" in summary[2]
    selection = json.loads((results / "transfer" / "selection.json").read_text())
    discovered = [r for r in final.values() if r["status"] == "ok" and not r.get("library_name")]
    if discovered:  # the transfer's top 1 by lower bound over every seed, with its interval
        top = max(discovered, key=lambda r: r["intervals"]["fitness"]["low"])
        assert selection[0]["key"] == top["id"] and selection[0]["fitness_low"] == top["intervals"]["fitness"]["low"]
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
    # the new generation compared with the same control units: none trained again, none added
    assert [p.name for p in (results / "experiments" / "control" / "cross_entropy").iterdir()] == ["seed1"]
    assert all(r["intervals"]["vs_control"] for r in map(json.loads, extended[4:]) if r["status"] == "ok")


def test_cifar10_paper_preset_plans_the_paper_jobs(tmp_path):
    preset = REPO / "configs" / "paper" / "cifar10.yaml"
    config = yaml.safe_load(preset.read_text())
    assert config["classification"]["training"]["model"] == "resnet18"
    assert config["discovery"]["proposer"]["options"]["model"] == "gpt-4"
    plan = snakemake(tmp_path, preset, "-n").stdout
    generations = config["discovery"]["generations"]
    for rule in ("propose", "validate", "archive", "promote"):  # one per generation, the seed archive included
        assert re.search(rf"^{rule}\s+{generations + 1}$", plan, re.MULTILINE), plan[-2000:]
    assert f"results/cifar10_paper/gen{generations}/archive.jsonl" in plan
    assert "classification_figures" in plan and "transfer_selection" in plan
    assert "final_archive" in plan and "results/cifar10_paper/summary.md" in plan
    # the control: generation 0's cross_entropy is its first seed, seeds 1 and 2 its own units (no beta)
    for seed in (1, 2):
        assert f"results/cifar10_paper/experiments/control/cross_entropy/seed{seed}/eval.json" in plan
    assert "/beta" not in plan
    # a transfer unit: the final archive's selection, retrained for 100 epochs on one GPU of its own
    unit = "results/cifar10_paper/transfer/efficientnetb0/cross_entropy/seed2/eval.json"
    plan = snakemake(tmp_path, preset, "-n", unit).stdout
    jobs = re.split(r"^\[.*\]$", plan, flags=re.MULTILINE)  # each job follows its timestamp line
    train = next(block for block in jobs if block.lstrip().startswith("rule classification_train:")
                 and "unit=transfer/efficientnetb0/cross_entropy/seed2" in block)
    assert "gpu=1" in train and "mem_mb=32000" in train and "runtime=240" in train
    assert "rule classification_data:" in plan and f"gen{generations}/archive.jsonl" in plan
    # the dataset comes through the real download code into the configured folder
    data = plan[plan.index("rule classification_data:"):]
    assert "results/cifar10_paper/data/classification.pt" in data
