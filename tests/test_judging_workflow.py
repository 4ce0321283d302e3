"""The paper's chat setup end to end, in miniature: a tiny model trained on conversational pairs, MT-Bench as the
fitness and AlpacaEval 2.0 on the final archive's best objectives, with a real llama.cpp server (SmolLM2-135M) on
loopback as the judge of both. Its ratings are poor; the plumbing, parsing, caching and file formats are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from loopback import ScriptedServer, free_port
from prefdisco.summary import ranking_score
from prefdisco.judging.figures import plot_mt_bench_radar
from prefdisco.judging.mt_bench import parse_rating

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2"]
TIMEOUT = 900
# Jobs run `python -m prefdisco...`: the interpreter running the tests must be the one they find on PATH.
ENV = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
FIXTURES = REPO / "tests" / "fixtures" / "judging"
MODELS = ["reference", "gen0/cand0", "gen1/cand0"]

pytestmark = pytest.mark.workflow


def write_chat_config(folder: Path, model_dir: Path, judge_url: str) -> Path:
    config = yaml.safe_load((REPO / "tests" / "workflow" / "chat_config.yaml").read_text())
    config["reference"]["source"] = str(model_dir)
    config["task"]["options"]["dataset"] = str(FIXTURES / "dpo_mix_tiny.jsonl")
    config["benchmarks"]["mt_bench"]["data_dir"] = str(FIXTURES / "mt_bench")
    config["benchmarks"]["mt_bench"]["judge"]["base_url"] = judge_url
    config["benchmarks"]["alpaca_eval"]["data_dir"] = str(FIXTURES / "alpaca_eval")
    config["benchmarks"]["alpaca_eval"]["annotator"]["base_url"] = judge_url
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(folder: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([*SNAKEMAKE, "--directory", str(folder), *args], capture_output=True, text=True,
                            timeout=TIMEOUT, env=ENV)
    if result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def judge_url(llama_url):
    return llama_url


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory, tiny_model_dir, judge_url) -> Path:
    folder = tmp_path_factory.mktemp("chat")
    write_chat_config(folder, tiny_model_dir, judge_url)
    snakemake(folder)
    return folder / "results" / "chat"


def test_mt_bench_files_scores_and_fitness(chat_run):
    for model in MODELS:
        answers = lines(chat_run / model / "mt_bench" / "model_answer.jsonl")
        assert [a["question_id"] for a in answers] == [81, 111]  # the configured subset
        assert all(len(a["choices"][0]["turns"]) == 2 and a["model_id"] == model.replace("/", "-") for a in answers)
        judgments = lines(chat_run / model / "mt_bench" / "model_judgment.jsonl")
        assert [(j["question_id"], j["turn"], j["judge"]) for j in judgments] == [
            (81, 1, ["smollm2-judge", "single-v1"]), (111, 1, ["smollm2-judge", "single-math-v1"]),
            (81, 2, ["smollm2-judge", "single-v1-multi-turn"]), (111, 2, ["smollm2-judge", "single-math-v1-multi-turn"])]
        assert all(j["score"] == parse_rating(j["judgment"]) for j in judgments)
        scores = json.loads((chat_run / model / "mt_bench" / "scores.json").read_text())
        usage = scores["judge"]
        assert usage["requests"] == 4 and usage["calls"] + usage["cache_hits"] == 4
        assert usage["total_cost_usd"] > 0  # priced as GPT-4 in the test config
        assert scores["n_unparsed"] == sum(j["score"] == -1 for j in judgments)

        evaluation = json.loads((chat_run / model / "eval.json").read_text())
        if scores["score"] is not None:  # the fitness is the MT-Bench score (kl_penalty 0)
            assert evaluation["status"] == "ok" and evaluation["fitness"] == pytest.approx(scores["score"])
            assert evaluation["metrics"]["mt_bench"]["categories"] == scores["categories"]
        else:  # a judge whose replies never hold a rating leaves no fitness, and says so
            assert evaluation["status"] == "eval_failed" and "gave no parsable rating in 4" in evaluation["error"]
        assert evaluation["metrics"]["mt_bench"]["judge"] == usage
    # one cache entry per distinct request; a request seen before (the same answer, judged again) is not paid again
    cached = list((chat_run.parents[1] / "results" / "llm_cache").rglob("*.json"))
    judged_prompts = {j["user_prompt"] for m in MODELS for j in lines(chat_run / m / "mt_bench" / "model_judgment.jsonl")}
    calls = sum(json.loads(p.read_text())["judge"]["calls"] for p in chat_run.rglob("scores.json"))
    calls += sum(json.loads(p.read_text())["judge"]["calls"] for p in chat_run.rglob("metrics.json"))
    assert len(judged_prompts) < len(cached) <= calls
    archive = lines(chat_run / "gen1" / "archive.jsonl")
    assert [r["id"] for r in archive] == ["g0-k0", "g1-k0"] and all("mt_bench" in r["metrics"] for r in archive)
    manifest = json.loads((chat_run / "data" / "mt_bench" / "manifest.json").read_text())
    assert manifest["questions"] == 3 and manifest["local_dir"] == str(FIXTURES / "mt_bench")
    assert (chat_run / "figures" / "mt_bench_radar.png").read_bytes().startswith(b"\x89PNG")


def test_alpaca_eval_of_the_held_out_objectives(chat_run):
    selection = json.loads((chat_run / "alpaca_eval" / "selection.json").read_text())
    assert "g0-k0" in {s["id"] for s in selection}  # the trained DPO baseline, whatever its fitness
    table = pd.read_csv(chat_run / "alpaca_eval" / "table2.csv")
    assert len(table) == 2 * len(selection) and set(table["reference"]) == {"gpt4_turbo", "sft"}
    for entry in selection:
        outputs = json.loads((chat_run / entry["unit"] / "alpaca_eval" / "model_outputs.json").read_text())
        assert len(outputs) == 3 and all(set(o) == {"dataset", "instruction", "output", "generator"} for o in outputs)
        for reference in ("gpt4_turbo", "sft"):
            folder = chat_run / entry["unit"] / "alpaca_eval" / reference
            metrics = json.loads((folder / "metrics.json").read_text())
            annotations = json.loads((folder / "annotations.json").read_text())
            assert metrics["status"] == "ok" and metrics["n_total"] + metrics["n_unparsed"] == 3
            assert metrics["judge"]["requests"] == 3 and metrics["judge"]["annotator"] == "weighted_alpaca_eval_gpt4_turbo"
            assert len(annotations) == 3 and {a["generator_2"] for a in annotations} == {entry["unit"].replace("/", "-")}
            expected = "gpt4_1106_preview" if reference == "gpt4_turbo" else "reference"
            assert {a["generator_1"] for a in annotations} == {expected}
            if metrics["win_rate"] is not None:
                assert 0 <= metrics["win_rate"] <= 100 and 0 <= metrics["lc_win_rate"] <= 100
    sft = json.loads((chat_run / "reference" / "alpaca_eval" / "model_outputs.json").read_text())
    assert {o["generator"] for o in sft} == {"reference"}
    markdown = (chat_run / "alpaca_eval" / "table2.md").read_text()
    assert markdown.startswith("| Objective | vs gpt4_turbo: win rate (%)") and "judge cost" in markdown
    assert (chat_run / "figures" / "alpaca_eval_lc_win_rate.png").read_bytes().startswith(b"\x89PNG")


def test_rescoring_makes_no_judge_call(chat_run, tiny_model_dir):
    """Re-score everything with the judge gone: every reply comes from the cache, nothing is asked, nothing differs."""
    folder = chat_run.parents[1]
    before = {p: p.read_text() for p in chat_run.rglob("model_judgment.jsonl")}
    before_preferences = {p: [a["preference"] for a in json.loads(p.read_text())]
                          for p in chat_run.rglob("annotations.json")}
    write_chat_config(folder, tiny_model_dir, f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there
    targets = [str(p.relative_to(folder)) for p in chat_run.rglob("scores.json")]
    targets += [str(p.relative_to(folder)) for p in chat_run.rglob("metrics.json") if p.parent.parent.name == "alpaca_eval"]
    snakemake(folder, *targets, "--forcerun", "mt_bench_judgment", "alpaca_eval_annotations")
    for path in chat_run.rglob("scores.json"):
        usage = json.loads(path.read_text())["judge"]
        assert usage["calls"] == 0 and usage["cache_hits"] == 4 and usage["cost_usd"] == 0, path
    for path, text in before.items():
        assert [j["judgment"] for j in lines(path)] == [json.loads(line)["judgment"] for line in text.splitlines()]
    for path, preferences in before_preferences.items():
        metrics = json.loads((path.parent / "metrics.json").read_text())
        assert metrics["judge"]["calls"] == 0 and metrics["judge"]["cache_hits"] == 3
        assert [a["preference"] for a in json.loads(path.read_text())] == preferences


def test_mt_bench_score_is_the_fitness(tmp_path, tiny_model_dir):
    """The 135M judge rarely writes a rating; a scripted judge on loopback does, in FastChat's format, so that the
    score travels the whole way: scores -> evaluation (reward, fitness) -> archive -> summary and radar."""

    def rate(request: dict) -> tuple[int, str]:
        prompt = request["messages"][-1]["content"]
        return 200, f"A fair answer. Rating: [[{1 + sum(map(ord, prompt)) % 10}]]"

    with ScriptedServer(rate) as judge:
        config_path = write_chat_config(tmp_path, tiny_model_dir, judge.url)
        config = yaml.safe_load(config_path.read_text())
        config["benchmarks"]["alpaca_eval"]["held_out"] = False
        config["discovery"]["population"] = 2
        config["benchmarks"]["mt_bench"]["answers"]["question_ids"] = None  # all three: a radar needs 3 categories
        config_path.write_text(yaml.safe_dump(config))
        snakemake(tmp_path)
    results = tmp_path / "results" / "chat"
    archive = lines(results / "gen1" / "archive.jsonl")
    evaluated = [r for r in archive if r["status"] == "ok"]
    assert [r["id"] for r in archive][:1] == ["g0-k0"] and len(evaluated) >= 2
    for record in evaluated:
        unit = f"gen{record['generation']}/cand{record['candidate']}"
        scores = json.loads((results / unit / "mt_bench" / "scores.json").read_text())
        assert 1 <= scores["score"] <= 10 and record["fitness"] == pytest.approx(scores["score"])
        assert record["metrics"]["reward"] == scores["score"] and set(scores["categories"]) == {"writing", "math", "stem"}
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
    assert not (results / "alpaca_eval").exists()  # not asked for
