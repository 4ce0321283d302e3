"""Benchmark answers of a real (tiny) model: both MT-Bench turns in the model's chat template at FastChat's
per-category temperatures, AlpacaEval outputs, and the files in the formats the benchmarks' tools read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefdisco.io import read_json, read_jsonl, write_json
from prefdisco.judging import answers as answers_stage
from prefdisco.judging.answers import AnswerOptions, generate_replies, load_questions, mt_bench_answers
from prefdisco.models import load_causal_lm, load_tokenizer, resolve_device

FIXTURES = Path(__file__).parent / "fixtures" / "judging"


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_causal_lm(tiny_model_dir, resolve_device("cpu")), load_tokenizer(tiny_model_dir)


def test_replies_are_batched_and_reproducible(tiny):
    model, tokenizer = tiny
    conversations = [[{"role": "user", "content": f"Question {i}?"}] for i in range(5)]
    temperatures = [0.0, 0.7, 0.0, 0.7, 0.1]
    first = generate_replies(model, tokenizer, conversations, temperatures, 6, batch_size=2, seed=3)
    again = generate_replies(model, tokenizer, conversations, temperatures, 6, batch_size=2, seed=3)
    assert first == again and len(first) == 5 and all(isinstance(r, str) for r in first)
    # greedy replies (temperature 0) do not depend on the seed; a sampled batch does
    other = generate_replies(model, tokenizer, conversations, temperatures, 6, batch_size=2, seed=4)
    assert [first[0], first[2]] == [other[0], other[2]]


def test_mt_bench_answers_condition_turn_two_on_turn_one(tiny, monkeypatch):
    model, tokenizer = tiny
    questions = load_questions(FIXTURES / "mt_bench")
    seen: list[tuple[list[list[dict]], list[float]]] = []
    original = answers_stage.generate_replies

    def spy(model, tokenizer, conversations, temperatures, *args):
        seen.append(([list(c) for c in conversations], list(temperatures)))
        return original(model, tokenizer, conversations, temperatures, *args)

    monkeypatch.setattr(answers_stage, "generate_replies", spy)
    records = mt_bench_answers(model, tokenizer, questions, "tiny", AnswerOptions(max_new_tokens=5, batch_size=4), 0)
    assert [t for _, t in seen] == [[0.7, 0.0, 0.1]] * 2  # writing, math, stem: FastChat's temperatures
    turn_two = seen[1][0][0]
    assert [m["role"] for m in turn_two] == ["user", "assistant", "user"]
    assert turn_two[1]["content"] == records[0]["choices"][0]["turns"][0]  # the model's own turn-1 answer
    assert turn_two[2]["content"] == questions[0]["turns"][1]
    # FastChat's model_answer schema
    assert set(records[0]) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
    assert [r["question_id"] for r in records] == [81, 111, 141]
    assert all(len(r["choices"]) == 1 and r["choices"][0]["index"] == 0 and len(r["choices"][0]["turns"]) == 2
               for r in records)


def test_model_without_chat_template_is_refused(tiny):
    model, tokenizer = tiny
    template, tokenizer.chat_template = tokenizer.chat_template, None
    try:
        with pytest.raises(ValueError, match="has no chat template"):
            generate_replies(model, tokenizer, [[{"role": "user", "content": "hi"}]], [0.0], 3, 1, 0)
    finally:
        tokenizer.chat_template = template


def test_cli_writes_the_benchmarks_formats(tiny_model_dir, tmp_path):
    write_json(tmp_path / "reference.json", {"source": "tiny", "path": str(tiny_model_dir), "revision": None})
    common = ["--reference", str(tmp_path / "reference.json"), "--device", "cpu", "--model-id", "reference"]
    answers_stage.main(["--benchmark", "mt_bench", *common, "--data-dir", str(FIXTURES / "mt_bench"),
                        "--options", json.dumps({"max_new_tokens": 4, "question_ids": [111, 81]}),
                        "--output", str(tmp_path / "model_answer.jsonl"), "--record", str(tmp_path / "mt.json")])
    answers = read_jsonl(tmp_path / "model_answer.jsonl")
    assert [a["question_id"] for a in answers] == [111, 81] and answers[0]["model_id"] == "reference"
    record = read_json(tmp_path / "mt.json")
    assert record["status"] == "ok" and record["n_answers"] == 2 and record["wall_seconds"] > 0

    answers_stage.main(["--benchmark", "alpaca_eval", *common, "--data-dir", str(FIXTURES / "alpaca_eval"),
                        "--options", json.dumps({"max_new_tokens": 4, "max_instances": 3, "temperature": 0.7}),
                        "--output", str(tmp_path / "model_outputs.json"), "--record", str(tmp_path / "ae.json")])
    outputs = read_json(tmp_path / "model_outputs.json")
    eval_set = read_json(FIXTURES / "alpaca_eval" / "alpaca_eval_gpt4_baseline.json")
    assert [o["instruction"] for o in outputs] == [r["instruction"] for r in eval_set[:3]]
    assert all(set(o) == {"dataset", "instruction", "output", "generator"} and o["generator"] == "reference"
               for o in outputs)

    with pytest.raises(ValueError, match=r"question_ids: \[999\] are not in the question file"):
        answers_stage.main(["--benchmark", "mt_bench", *common, "--data-dir", str(FIXTURES / "mt_bench"),
                            "--options", json.dumps({"question_ids": [999]}), "--output", str(tmp_path / "x.jsonl"),
                            "--record", str(tmp_path / "x.json")])


def test_failed_training_gives_no_answers(tmp_path):
    answers, record = answers_stage.run_answers("mt_bench", tmp_path / "unused.json", tmp_path, {
        "status": "train_failed", "error": "objective returned (4, 2)"}, FIXTURES / "mt_bench", AnswerOptions(),
        "gen1-cand0", 0)
    assert answers == [] and record["status"] == "train_failed" and "(4, 2)" in record["error"]
