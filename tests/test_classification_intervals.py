"""Noise-aware fitness for classification objectives: the preference family's interval machinery over training seeds
x validation examples (per-example correctness), the control unit without a beta, per-unit training seeds, and the
decisions that read the lower bound (transfer selection, Fig. 2 left's best so far, summary.md)."""

from __future__ import annotations

import copy
import math
import random
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import REPO
from prefdisco.classification.data import digits_split
from prefdisco.classification.figures import plot_left
from prefdisco.classification.objectives import library_source
from prefdisco.classification.summary import summary_markdown
from prefdisco.classification.train import ClassifierOptions, run_training
from prefdisco.classification.transfer import select
from prefdisco.intervals import EXAMPLES, attach_intervals, control_intervals, lower_bound, per_prompt, unit_intervals
from prefdisco.sandbox.runner import SandboxLimits
from prefdisco.stages.candidates import experiment_spec
from prefdisco.stages.cascade import compare_with_control, final_records, promotion_decisions

N = 300  # validation examples


def evaluation(correct: list[int]) -> dict:
    """An eval.json of a classification unit: validation accuracy and its per-example correctness."""
    return {"status": "ok", "fitness": sum(correct) / len(correct),
            "metrics": {"val_accuracy": sum(correct) / len(correct), "test_accuracy": 0.9, "test_ci_low": 0.85,
                        "test_ci_high": 0.94, "per_example": {"val_correct": list(correct)}}}


def flipped(correct: list[int], count: int, to: int) -> list[int]:
    """``correct`` with its first ``count`` examples that are not ``to`` set to ``to``."""
    out, left = list(correct), count
    for i, value in enumerate(out):
        if left and value != to:
            out[i], left = to, left - 1
    assert left == 0
    return out


def archive_record(rid: str, generation: int, correct: list[int], library: str | None = None) -> dict:
    return {"id": rid, "generation": generation, "candidate": int(rid.split("-k")[1]), "name": f"loss_{rid}",
            "code": f"def loss_{rid.replace('-', '_')}(logits, targets):\n    return logits.sum(-1)\n",
            "library_name": library, **evaluation(correct)}


@pytest.fixture
def base() -> list[int]:
    rng = random.Random(0)
    return [int(rng.random() < 0.8) for _ in range(N)]


def test_per_prompt_of_a_classification_unit_is_its_per_example_correctness(base):
    record = evaluation(base)
    assert per_prompt(record, "fitness") == [float(v) for v in base]
    assert per_prompt(record, "reward") is None and per_prompt(record, "kl") is None


def test_identical_vectors_differ_by_exactly_zero(base):
    result = unit_intervals({0: evaluation(base)}, {0: evaluation(base)}, 0.0, "cross_entropy")
    difference = result["vs_control"]
    assert difference["mean"] == 0.0 and difference["low"] == 0.0 and difference["high"] == 0.0
    # fitness alone (no reward, no KL), over training seeds x validation examples, and it says so
    assert set(result) >= {"fitness", "vs_control", "method", "seeds", "examples", "over"}
    assert "reward" not in result and "kl" not in result and "prompts" not in result
    assert result["over"] == EXAMPLES and "validation examples" in result["method"]
    assert result["examples"] == N and result["seeds"] == [0]
    assert result["fitness"]["mean"] == pytest.approx(sum(base) / N)


def test_a_known_shift_gives_its_difference_and_the_paired_interval(base):
    better = flipped(base, 15, 1)  # 15 more examples right, none wrong: +0.05 exactly
    result = unit_intervals({0: evaluation(better)}, {0: evaluation(base)}, 0.0, "cross_entropy")
    difference = result["vs_control"]
    assert difference["mean"] == pytest.approx(15 / N)
    # one seed, none borrowed: the interval is over examples only, the paired per-example differences' SE
    p = 15 / N
    se = math.sqrt(p * (1 - p) * N / (N - 1) / N)
    assert difference["se"] == pytest.approx(se) and difference["seed_variance"] == "none"
    assert difference["low"] == pytest.approx(p - 1.959964 * se, abs=1e-6) and difference["low"] > 0


def test_the_control_seeds_lend_their_spread_symmetrically_around_zero(base):
    control = {0: evaluation(base), 1: evaluation(flipped(base, 20, 0)), 2: evaluation(flipped(base, 10, 1))}
    result = unit_intervals({0: evaluation(base)}, control, 0.0, "cross_entropy")
    difference = result["vs_control"]
    assert difference["mean"] == 0.0 and difference["seed_variance"] == "borrowed"
    assert difference["high"] > 0 and difference["low"] == pytest.approx(-difference["high"])
    assert result["fitness"]["seed_variance"] == "borrowed" and result["fitness"]["high"] > result["fitness"]["low"]


def test_the_cascade_stages_serve_classification_records(base):
    rng = random.Random(1)
    control = {s: evaluation([v if rng.random() > 0.05 else 1 - v for v in base]) for s in range(3)}
    records = [archive_record("g0-k0", 0, control[0]["metrics"]["per_example"]["val_correct"], "cross_entropy"),
               archive_record("g1-k0", 1, flipped(base, 40, 1)),  # clearly better
               archive_record("g1-k1", 1, flipped(base, 40, 0))]  # clearly worse
    attach_intervals(records, control, 0.0, "cross_entropy", 0)
    assert all(r["intervals"]["over"] == EXAMPLES for r in records)
    decisions = {d["id"]: d for d in promotion_decisions(records, 1, control_intervals(control, 0.0, "cross_entropy"),
                                                         "cross_entropy")}
    assert decisions["g1-k0"]["promoted"] and not decisions["g1-k1"]["promoted"]
    diverged = {"status": "train_failed", "fitness": None, "metrics": {}, "error": "non-finite loss (inf)"}
    replica = {"g1-k0": {1: evaluation(flipped(base, 35, 1)), 2: diverged}}
    final = final_records(records, {"g1-k0": "incumbent"}, {"g1-k1": "ruled out"}, replica, control, 0.0,
                          "cross_entropy", 0)
    assert final[1]["intervals"]["seeds"] == [0, 1] and final[2]["intervals"]["seeds"] == [0]
    # the seed that failed is named with its error, not silently dropped
    assert final[1]["intervals"]["seeds_reason"] == "promoted: incumbent; seed 2 train_failed: non-finite loss (inf)"
    assert final[0]["intervals"]["seeds"] == [0, 1, 2]  # the control's row: every control seed
    verdict = compare_with_control(final, "cross_entropy")
    assert verdict["answer"] == "yes" and verdict["best"] == "g1-k0"
    assert "Cross-entropy" in verdict["sentence"] and f"x {N} validation examples" in verdict["sentence"]
    assert "prompts" not in verdict["sentence"]

    markdown = summary_markdown(final, verdict, "digits")
    lines = markdown.splitlines()
    assert lines[2] == verdict["sentence"]  # the verdict opens the summary
    assert "training seeds x validation examples" in markdown and "prompts" not in markdown
    rows = [line for line in lines if line.startswith("| 1 ") or line.startswith("| 2 ") or line.startswith("| 3 ")]
    assert [row.split(" | ")[1] for row in rows] == ["g1-k0 loss_g1-k0", "Cross-entropy", "g1-k1 loss_g1-k1"]


def lucky_and_steady(base: list[int]) -> list[dict]:
    """'lucky' has the higher fitness but a wide interval; 'steady' the higher lower bound."""
    lucky = archive_record("g1-k0", 1, flipped(base, 6, 1))
    steady = archive_record("g1-k1", 1, flipped(base, 3, 1))
    lucky["intervals"] = {"fitness": {"mean": 0.83, "low": 0.70, "high": 0.96, "se": 0.066, "seeds": 1,
                                      "prompts": N, "seed_variance": "borrowed"}}
    steady["intervals"] = {"fitness": {"mean": 0.81, "low": 0.78, "high": 0.84, "se": 0.015, "seeds": 3,
                                       "prompts": N, "seed_variance": "pooled"}}
    return [lucky, steady]


def test_transfer_selects_by_lower_bound_and_carries_the_interval(base):
    records = [archive_record("g0-k0", 0, base, "cross_entropy"), *lucky_and_steady(base)]
    chosen = select(records, top=1, baselines=["cross_entropy"])
    assert [c["key"] for c in chosen] == ["g1-k1", "cross_entropy"]
    assert (chosen[0]["fitness"], chosen[0]["fitness_low"], chosen[0]["fitness_seeds"]) == (0.81, 0.78, 3)
    assert lower_bound(records[2]) == 0.78


def test_fig2_left_best_so_far_follows_the_lower_bound(base, tmp_path):
    lucky, steady = lucky_and_steady(base)
    info = plot_left([archive_record("g0-k0", 0, base, "cross_entropy"), lucky, steady], tmp_path / "left.png")
    assert info["best_so_far_ids"] == ["g1-k0", "g1-k1"] and info["best"] == 0.81
    assert (tmp_path / "left.png").read_bytes()[:4] == b"\x89PNG"


def test_a_classification_control_unit_has_no_beta():
    spec = experiment_spec("control/cross_entropy/seed1", "cross_entropy", None, 1, "classification")
    assert spec["training_overrides"] == {"seed": 1} and spec["code"] == library_source("cross_entropy")
    assert spec["library_name"] == "cross_entropy" and spec["name"] == "cross_entropy"
    # a preference experiment still needs its beta, and the CLI says so
    result = subprocess.run([sys.executable, "-m", "prefdisco.stages.candidates", "experiment", "--id", "x/dpo/seed0",
                             "--objective", "dpo", "--seed", "0", "--output", "unused.json"],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "--beta" in result.stderr


def dry_run(tmp_path, config: dict, *targets: str) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(tmp_path), "--configfile", str(path), "--cores", "1", *targets],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_the_control_units_of_a_classification_run_are_planned_without_beta(tmp_path):
    config = yaml.safe_load((REPO / "tests" / "workflow" / "classification_config.yaml").read_text())
    config["fitness"] = {"control_seeds": 3}
    config["classification"]["training"]["seed"] = 4
    plan = dry_run(tmp_path, config, "results/tiny/gen0/archive.jsonl")
    # seed 4 is generation 0's cross_entropy unit; seeds 5 and 6 are the control's own units, without a beta
    for seed in (5, 6):
        assert f"results/tiny/experiments/control/cross_entropy/seed{seed}/eval.json" in plan
    assert "control/cross_entropy/seed4" not in plan and "beta" not in plan
    # a control outside the seed archive is trained at every seed, its first one included
    config["fitness"] = {"control": "label_smoothing", "control_seeds": 2}
    plan = dry_run(tmp_path / "other", config, "results/tiny/gen0/archive.jsonl")
    for seed in (4, 5):
        assert f"results/tiny/experiments/control/label_smoothing/seed{seed}/eval.json" in plan


def test_the_schema_gives_a_classification_run_its_control_and_no_kl():
    from snakemake.utils import validate

    schema = REPO / "src" / "prefdisco" / "schemas" / "config.schema.yaml"
    config = yaml.safe_load((REPO / "tests" / "workflow" / "classification_config.yaml").read_text())
    del config["fitness"]
    filled = copy.deepcopy(config)
    validate(filled, str(schema), set_default=True)
    assert filled["fitness"]["control"] == "cross_entropy" and filled["fitness"]["kl_penalty"] == 0
    assert filled["classification"]["training"]["seed"] == 0
    import jsonschema

    validator = jsonschema.Draft202012Validator(yaml.safe_load(schema.read_text()))
    config["fitness"] = {"control": "dpo"}
    found = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(config)]
    assert any(e.startswith("fitness.control: 'dpo' is not one of ['cross_entropy'") for e in found), found


def test_a_units_training_seed_sets_its_initialisation_and_order(tmp_path):
    data = digits_split(seed=0)
    options = ClassifierOptions(model="mlp", epochs=1, batch_size=64, learning_rate=0.05, device="cpu")
    limits = SandboxLimits(cpu_seconds=10, memory_mb=4096, wall_seconds=30.0)
    weights, records = {}, {}
    for name, seed in (("a", 0), ("b", 1), ("c", 1)):
        spec = experiment_spec(f"control/cross_entropy/seed{seed}", "cross_entropy", None, seed, "classification")
        records[name] = run_training(spec, data, options, tmp_path / f"{name}.pt", limits)
        weights[name] = torch.load(tmp_path / f"{name}.pt")
    assert records["b"]["options"]["seed"] == 1 and records["a"]["options"]["seed"] == 0
    first = next(iter(weights["a"]))
    assert not torch.equal(weights["a"][first], weights["b"][first])  # another seed: other weights
    assert all(torch.equal(weights["b"][k], weights["c"][k]) for k in weights["b"])  # the same seed: the same run
    assert records["a"]["history"] != records["b"]["history"]


def test_the_llm_prompt_says_what_a_classification_interval_is_over(base):
    from prefdisco.classification.prompt import SYSTEM_PROMPT
    from prefdisco.proposers.prompts import build_messages

    control = {0: evaluation(base), 1: evaluation(flipped(base, 10, 0))}
    records = [archive_record("g0-k0", 0, base, "cross_entropy"), archive_record("g1-k0", 1, flipped(base, 9, 1))]
    attach_intervals(records, control, 0.0, "cross_entropy", 0)
    user = build_messages(records, 2, 0, [], system_prompt=SYSTEM_PROMPT)[1]["content"]
    assert "intervals over training seeds and validation examples" in user and "prompts" not in user
    assert "; vs Cross-entropy +0.030 [" in user  # the paired difference, 9 of 300 examples more right
