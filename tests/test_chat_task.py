"""The chat task: conversational preference pairs from a file in argilla/dpo-mix-7k's schema, read with
``datasets``; KL on held-out conversations; and the evaluation stage, where the MT-Bench score becomes the reward."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from prefdisco.stages.evaluate import run_evaluation
from prefdisco.io import write_json
from prefdisco.tasks import chat, get_task

DPO_MIX = Path(__file__).parent / "fixtures" / "judging" / "dpo_mix_tiny.jsonl"


def test_pairs_from_a_local_file():
    options = chat.to_options({"dataset": str(DPO_MIX), "heldout_prompts": 3})
    pairs, heldout = chat.build(None, None, options, seed=0)
    rows = [json.loads(line) for line in DPO_MIX.read_text().splitlines()]
    assert len(pairs) == 11 and len(heldout) == 2  # 11 of the first 11 rows pair; of the last 3, one makes no pair
    first = pairs[0]
    assert first["prompt"] == rows[0]["chosen"][:-1] and first["chosen"] == rows[0]["chosen"][-1:]
    assert first["rejected"] == rows[0]["rejected"][-1:] and first["chosen_rating"] == 5.0
    assert heldout == [rows[11]["chosen"][:-1], rows[12]["chosen"][:-1]]  # the two-turn prompt keeps its turns
    assert len(heldout[1]) == 3 and heldout[1][-1]["role"] == "user"
    assert not {json.dumps(p["prompt"]) for p in pairs} & {json.dumps(h) for h in heldout}

    capped = chat.build(None, None, chat.to_options({"dataset": str(DPO_MIX), "heldout_prompts": 3, "max_pairs": 4}), 0)
    assert [p["pair_id"] for p in capped[0]] == ["p00000", "p00001", "p00002", "p00003"]


def test_parquet_folder_with_splits(tmp_path):
    rows = [json.loads(line) for line in DPO_MIX.read_text().splitlines()]
    folder = tmp_path / "dpo-mix"
    folder.mkdir()
    pd.DataFrame(rows[:10]).to_parquet(folder / "train-00000-of-00001.parquet")
    pd.DataFrame(rows[10:]).to_parquet(folder / "test-00000-of-00001.parquet")
    pairs, heldout = chat.build(None, None, chat.to_options({"dataset": str(folder), "heldout_prompts": 8}), 0)
    assert len(pairs) == 10 and len(heldout) == 3  # the test split, less the row that makes no pair


def test_bad_rows_and_options_are_named():
    assert chat.to_pair({"chosen": [{"role": "user", "content": "a"}], "rejected": []}, 0) is None
    with pytest.raises(ValueError, match=r"task.options \(task 'chat'\): unknown key\(s\) \['max_pair'\]"):
        chat.to_options({"max_pair": 3})
    with pytest.raises(ValueError, match="cannot hold out"):
        chat.build(None, None, chat.to_options({"dataset": str(DPO_MIX), "heldout_prompts": 50}), 0)
    assert get_task("chat") is chat


def test_evaluation_takes_the_mt_bench_score_as_reward(tiny_model_dir, tmp_path):
    write_json(tmp_path / "reference.json", {"source": "tiny", "path": str(tiny_model_dir), "revision": None})
    options = {"dataset": str(DPO_MIX), "heldout_prompts": 3, "max_new_tokens": 4}
    _, heldout = chat.build(None, None, chat.to_options(options), 0)
    judged = {"benchmark": "mt_bench", "status": "ok", "score": 6.5, "score_sem": 0.5, "turn_1": 7.0, "turn_2": 6.0,
              "categories": {"writing": 6.5}, "n_judgments": 4, "n_unparsed": 0,
              "judge": {"model": "gpt-4", "calls": 4, "total_cost_usd": 0.12}}
    record = run_evaluation("chat", options, tmp_path / "reference.json", heldout, 0, 0.5, "cpu", None, None, judged)
    metrics = record["metrics"]
    assert record["status"] == "ok" and metrics["reward"] == 6.5 and metrics["kl"] == 0.0
    assert record["fitness"] == pytest.approx(6.5 - 0.5 * metrics["kl"])
    assert metrics["mt_bench"]["categories"] == {"writing": 6.5} and metrics["mt_bench"]["judge"]["calls"] == 4
    assert metrics["n_prompts"] == 2

    failed = {**judged, "status": "eval_failed", "error": "the judge gpt-4 gave no parsable rating in 4 judgments",
              "score": None}
    record = run_evaluation("chat", options, tmp_path / "reference.json", heldout, 0, 0.0, "cpu", None, None, failed)
    assert record["status"] == "eval_failed" and record["fitness"] is None and "no parsable rating" in record["error"]
    assert record["metrics"]["mt_bench"]["n_judgments"] == 4

    with pytest.raises(ValueError, match="task 'chat' has no reward of its own: set fitness.benchmark to mt_bench"):
        run_evaluation("chat", options, tmp_path / "reference.json", heldout, 0, 0.0, "cpu", None, None, None)


def test_sentiment_keeps_its_own_reward_beside_mt_bench(tiny_model_dir, tmp_path):
    write_json(tmp_path / "reference.json", {"source": "tiny", "path": str(tiny_model_dir), "revision": None})
    options = {"max_new_tokens": 4, "eval_samples_per_prompt": 1}
    judged = {"status": "ok", "score": 3.0, "score_sem": None, "categories": {}, "judge": {"calls": 0}}
    record = run_evaluation("sentiment", options, tmp_path / "reference.json", ["The movie was"], 0, 0.0, "cpu",
                            None, None, judged)
    assert record["metrics"]["reward"] == 3.0 and -1 <= record["metrics"]["task_reward"] <= 1
