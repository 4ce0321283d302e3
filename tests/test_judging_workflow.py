"""The paper's chat setup end to end, in miniature: a tiny model trained on conversational pairs, MT-Bench as the
fitness and AlpacaEval 2.0 on the final archive's best objectives, judged by a scripted server on loopback whose
replies are in each benchmark's format (tests/conftest.py::chat_run, shared with the paper-export tests). The
plumbing, parsing, caching and file formats are checked; a real llama.cpp judge and annotator are exercised in
tests/test_mt_bench.py and tests/test_alpaca_eval.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from loopback import free_port
from prefdisco.judging.figures import plot_mt_bench_radar
from prefdisco.judging.mt_bench import parse_rating
from prefdisco.intervals import ranking_score
from tiny_runs import CHAT_FIXTURES as FIXTURES
from tiny_runs import copy_run, set_judge, snakemake

QUESTIONS = [81, 111, 141]  # the fixture's three, one per category

pytestmark = pytest.mark.workflow


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def judged_units(results: Path) -> list[str]:
    """Every unit whose answers were judged: the reference, each candidate, the control's further seed."""
    return sorted(str(p.parent.parent.relative_to(results)) for p in results.rglob("mt_bench/scores.json"))


def test_mt_bench_files_scores_and_fitness(chat_run):
    results = chat_run / "results" / "chat"
    units = judged_units(results)
    assert {"reference", "gen0/cand0", "gen0/cand1", "gen1/cand0"} <= set(units), units
    for model in units:
        answers = lines(results / model / "mt_bench" / "model_answer.jsonl")
        assert [a["question_id"] for a in answers] == QUESTIONS
        assert all(len(a["choices"][0]["turns"]) == 2 and a["model_id"] == model.replace("/", "-") for a in answers)
        judgments = lines(results / model / "mt_bench" / "model_judgment.jsonl")
        kinds = {81: "single-v1", 111: "single-math-v1", 141: "single-v1"}
        assert sorted((j["question_id"], j["turn"], j["judge"]) for j in judgments) == [
            (q, turn, ["smollm2-judge", kinds[q] + ("-multi-turn" if turn == 2 else "")])
            for q in QUESTIONS for turn in (1, 2)]
        assert all(j["score"] == parse_rating(j["judgment"]) for j in judgments)
        scores = json.loads((results / model / "mt_bench" / "scores.json").read_text())
        usage = scores["judge"]
        assert usage["requests"] == 6 and usage["calls"] + usage["cache_hits"] == 6
        assert usage["total_cost_usd"] > 0  # priced as GPT-4 in the test config
        assert scores["n_unparsed"] == 0 and 1 <= scores["score"] <= 10
        assert set(scores["categories"]) == {"writing", "math", "stem"}

        evaluation = json.loads((results / model / "eval.json").read_text())
        # the fitness is the MT-Bench score (kl_penalty 0), and so is the reward
        assert evaluation["status"] == "ok" and evaluation["fitness"] == pytest.approx(scores["score"])
        assert evaluation["metrics"]["reward"] == scores["score"]
        assert evaluation["metrics"]["mt_bench"]["categories"] == scores["categories"]
        assert evaluation["metrics"]["mt_bench"]["judge"] == usage
    # one cache entry per distinct request; a request seen before (the same answer, judged again) is not paid again
    cached = list((chat_run / "results" / "llm_cache").rglob("*.json"))
    judged_prompts = {j["user_prompt"] for m in units for j in lines(results / m / "mt_bench" / "model_judgment.jsonl")}
    calls = sum(json.loads(p.read_text())["judge"]["calls"] for p in results.rglob("scores.json"))
    calls += sum(json.loads(p.read_text())["judge"]["calls"] for p in results.rglob("metrics.json"))
    assert len(judged_prompts) < len(cached) <= calls
    archive = lines(results / "gen1" / "archive.jsonl")
    assert [r["id"] for r in archive] == ["g0-k0", "g0-k1", "g1-k0"] and all("mt_bench" in r["metrics"] for r in archive)
    manifest = json.loads((results / "data" / "mt_bench" / "manifest.json").read_text())
    assert manifest["questions"] == 3 and manifest["local_dir"] == str(FIXTURES / "mt_bench")


def test_mt_bench_score_travels_to_the_summary_and_the_radar(chat_run, tmp_path):
    """scores -> evaluation (reward, fitness) -> archive -> summary and radar."""
    results = chat_run / "results" / "chat"
    archive = lines(results / "gen1" / "archive.jsonl")
    evaluated = [r for r in archive if r["status"] == "ok"]
    assert len(evaluated) >= 2
    for record in evaluated:
        unit = f"gen{record['generation']}/cand{record['candidate']}"
        scores = json.loads((results / unit / "mt_bench" / "scores.json").read_text())
        assert record["fitness"] == pytest.approx(scores["score"]) and record["metrics"]["reward"] == scores["score"]
    summary = pd.read_csv(results / "summary.csv")
    final = {r["id"]: r for r in lines(results / "archive.jsonl")}  # every seed; ranked by the lower bound
    best = final[max(evaluated, key=lambda r: ranking_score(final[r["id"]]))["id"]]
    over_seeds = ((best.get("intervals") or {}).get("fitness") or {}).get("mean", best["fitness"])  # what its row shows
    assert summary.iloc[0]["id"] == best["id"] and summary.iloc[0]["fitness"] == pytest.approx(over_seeds)
    reference = json.loads((results / "reference" / "eval.json").read_text())
    assert reference["status"] == "ok" and reference["metrics"]["kl"] == 0.0 and 1 <= reference["fitness"] <= 10
    radar = plot_mt_bench_radar(archive, reference["metrics"], tmp_path / "radar.png")  # what the rule drew
    assert radar["categories"] == ["writing", "math", "stem"] and "SFT reference" in radar["series"]
    assert (results / "figures" / "mt_bench_radar.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_alpaca_eval_of_the_held_out_objectives(chat_run):
    results = chat_run / "results" / "chat"
    selection = json.loads((results / "alpaca_eval" / "selection.json").read_text())
    # the trained library objectives (include_seeds), whatever their fitness, and the best discovered one (top_k 1)
    assert {"g0-k0", "g0-k1"} <= {s["id"] for s in selection} and len(selection) <= 3
    table = pd.read_csv(results / "alpaca_eval" / "table2.csv")
    assert len(table) == 2 * len(selection) and set(table["reference"]) == {"gpt4_turbo", "sft"}
    for entry in selection:
        outputs = json.loads((results / entry["unit"] / "alpaca_eval" / "model_outputs.json").read_text())
        assert len(outputs) == 3 and all(set(o) == {"dataset", "instruction", "output", "generator"} for o in outputs)
        for reference in ("gpt4_turbo", "sft"):
            folder = results / entry["unit"] / "alpaca_eval" / reference
            metrics = json.loads((folder / "metrics.json").read_text())
            annotations = json.loads((folder / "annotations.json").read_text())
            assert metrics["status"] == "ok" and metrics["n_total"] == 3 and metrics["n_unparsed"] == 0
            assert metrics["judge"]["requests"] == 3 and metrics["judge"]["annotator"] == "weighted_alpaca_eval_gpt4_turbo"
            assert len(annotations) == 3 and {a["generator_2"] for a in annotations} == {entry["unit"].replace("/", "-")}
            expected = "gpt4_1106_preview" if reference == "gpt4_turbo" else "reference"
            assert {a["generator_1"] for a in annotations} == {expected}
            assert 0 <= metrics["win_rate"] <= 100 and 0 <= metrics["lc_win_rate"] <= 100
    sft = json.loads((results / "reference" / "alpaca_eval" / "model_outputs.json").read_text())
    assert {o["generator"] for o in sft} == {"reference"}
    markdown = (results / "alpaca_eval" / "table2.md").read_text()
    assert markdown.startswith("| Objective | vs gpt4_turbo: win rate (%)") and "judge cost" in markdown
    assert (results / "figures" / "alpaca_eval_lc_win_rate.png").read_bytes().startswith(b"\x89PNG")


def test_rescoring_makes_no_judge_call(chat_run, tmp_path):
    """Re-score everything with the judge gone: every reply comes from the cache, nothing is asked, nothing differs."""
    folder = copy_run(chat_run, tmp_path / "chat")
    results = folder / "results" / "chat"
    before = {p: p.read_text() for p in results.rglob("model_judgment.jsonl")}
    before_preferences = {p: [a["preference"] for a in json.loads(p.read_text())]
                          for p in results.rglob("annotations.json") if "exports" not in p.parts}
    set_judge(folder, f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there
    targets = [str(p.relative_to(folder)) for p in results.rglob("scores.json")]
    targets += [str(p.relative_to(folder)) for p in results.rglob("metrics.json") if p.parent.parent.name == "alpaca_eval"]
    snakemake(folder, *targets, "--forcerun", "mt_bench_judgment", "alpaca_eval_annotations")
    for path in results.rglob("scores.json"):
        usage = json.loads(path.read_text())["judge"]
        assert usage["calls"] == 0 and usage["cache_hits"] == 6 and usage["cost_usd"] == 0, path
    for path, text in before.items():
        assert [j["judgment"] for j in lines(path)] == [json.loads(line)["judgment"] for line in text.splitlines()]
    for path, preferences in before_preferences.items():
        metrics = json.loads((path.parent / "metrics.json").read_text())
        assert metrics["judge"]["calls"] == 0 and metrics["judge"]["cache_hits"] == 3
        assert [a["preference"] for a in json.loads(path.read_text())] == preferences
