"""MT-Bench single-answer grading: FastChat's prompts, matches and rating parser, judging through the project's client
against real servers (a scripted one for exact replies, llama.cpp for a real model), the reply cache, and scores."""

from __future__ import annotations

import ast
import json
import time
import warnings
from pathlib import Path

import pytest

from loopback import ScriptedServer, free_port
from prefdisco.io import read_jsonl
from prefdisco.judging import mt_bench
from prefdisco.judging.answers import MT_BENCH_TEMPERATURES
from prefdisco.judging.mt_bench import (JudgeOptions, judge_messages, load_judge_data, make_matches, mt_bench_scores,
                                        parse_rating, run_judging)
from prefdisco.llm_client import ServerError

MT_BENCH = Path(__file__).parent / "fixtures" / "judging" / "mt_bench"


def fastchat_common() -> dict:
    """Literal constants of FastChat's llm_judge/common.py, read from the installed source (importing it needs
    openai<1 and anthropic)."""
    import importlib.util

    spec = importlib.util.find_spec("fastchat")
    source = (Path(spec.origin).parent / "llm_judge" / "common.py").read_text()
    constants = {}
    with warnings.catch_warnings():  # FastChat's patterns are not raw strings
        warnings.simplefilter("ignore")
        tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            try:
                constants[name] = ast.literal_eval(node.value)
            except ValueError:
                if isinstance(node.value, ast.Call) and node.value.args:  # re.compile("...")
                    constants[name] = ast.literal_eval(node.value.args[0])
    return constants


def answers_for(questions: list[dict], turns: list[str]) -> dict[int, dict]:
    return {q["question_id"]: {"question_id": q["question_id"], "answer_id": "a", "model_id": "m",
                               "choices": [{"index": 0, "turns": turns}], "tstamp": 0.0} for q in questions}


def test_constants_are_fastchats():
    common = fastchat_common()
    assert common["temperature_config"] == MT_BENCH_TEMPERATURES
    assert tuple(common["NEED_REF_CATS"]) == mt_bench.NEED_REF_CATS
    assert common["one_score_pattern"] == mt_bench.ONE_SCORE_PATTERN.pattern
    assert common["one_score_pattern_backup"] == mt_bench.ONE_SCORE_PATTERN_BACKUP.pattern


@pytest.mark.parametrize(("judgment", "rating"), [
    ("The answer is fine. Rating: [[7]]", 7),
    ("Rating: [[8.5]]", 8.5),
    ("Rating: [[3]] ... though I first thought [[9]]", 3),  # the first match, as re.search
    ("Rating: [6]", 6),  # FastChat's fallback pattern
    ("[2] points, then [[4]]", 4),  # the double-bracket pattern is tried first
    ("I would rate it 7 out of 10.", -1),
    ("", -1),
    ("Rating: [[ten]]", -1),
])
def test_rating_parser(judgment, rating):
    assert parse_rating(judgment) == rating and type(parse_rating(judgment)) is type(rating)


def test_matches_follow_fastchat():
    questions, prompts, references = load_judge_data(MT_BENCH)
    assert [q["category"] for q in questions] == ["writing", "math", "stem"]
    matches = make_matches(questions, answers_for(questions, ["one", "two"]), prompts, references)
    assert [(m.question["question_id"], m.prompt["name"], m.multi_turn) for m in matches] == [
        (81, "single-v1", False), (141, "single-v1", False), (111, "single-math-v1", False),
        (81, "single-v1-multi-turn", True), (141, "single-v1-multi-turn", True),
        (111, "single-math-v1-multi-turn", True)]
    assert [m.reference is not None for m in matches] == [False, False, True, False, False, True]

    user, messages = judge_messages(matches[2])  # turn 1 of the math question, with the GPT-4 reference answer
    reference = references[111]["choices"][0]["turns"][0]
    assert messages == [{"role": "system", "content": prompts["single-math-v1"]["system_prompt"]},
                        {"role": "user", "content": user}]
    assert user == prompts["single-math-v1"]["prompt_template"].format(
        question=questions[1]["turns"][0], ref_answer_1=reference, answer="one")
    user, _ = judge_messages(matches[5])  # turn 2: the whole conversation and both reference turns
    assert "### Assistant A:\none" in user and "### Assistant A:\ntwo" in user
    assert references[111]["choices"][0]["turns"][1] in user and questions[1]["turns"][1] in user

    del references[111]
    with pytest.raises(ValueError, match=r"question 111 \(math\) has no reference answer"):
        make_matches(questions, answers_for(questions, ["a", "b"]), prompts, references)
    with pytest.raises(ValueError, match=r"the model answered no question\(s\) \[141\]"):
        answered = {k: v for k, v in answers_for(questions, ["a", "b"]).items() if k != 141}
        make_matches(questions, answered, prompts, load_judge_data(MT_BENCH)[2])


def test_scores_leave_unparsed_ratings_out():
    questions = [{"question_id": 1, "category": "writing"}, {"question_id": 2, "category": "math"}]
    judgments = [{"question_id": 1, "turn": 1, "score": 8}, {"question_id": 2, "turn": 1, "score": 4},
                 {"question_id": 1, "turn": 2, "score": -1}, {"question_id": 2, "turn": 2, "score": 6.5}]
    scores = mt_bench_scores(judgments, questions)
    assert scores["score"] == pytest.approx((8 + 4 + 6.5) / 3)
    assert scores["turn_1"] == 6 and scores["turn_2"] == 6.5
    assert scores["categories"] == {"writing": 8, "math": 5.25}
    assert scores["n_judgments"] == 4 and scores["n_unparsed"] == 1
    assert scores["per_question"] == [8, pytest.approx(5.25)]  # question order, mean of its parsed turns
    assert mt_bench_scores([{"question_id": 1, "turn": 1, "score": -1}], questions)["score"] is None
    assert mt_bench_scores([{"question_id": 1, "turn": 1, "score": -1}], questions)["per_question"] == [None, None]


def judged_answers(tmp_path: Path) -> tuple[list[dict], dict]:
    questions, _, _ = load_judge_data(MT_BENCH)
    answers = list(answers_for(questions, ["Paris is lovely.", "A sentence: All good."]).values())
    return answers, {"status": "ok", "error": None, "wall_seconds": 1.5}


def test_judging_against_a_scripted_server(tmp_path):
    answers, record = judged_answers(tmp_path)
    script = [(200, "Good. Rating: [[9]]"), (200, "Meh. [5]"), (200, "no rating at all"),
              (200, "Rating: [[6]]"), (200, "Rating: [[7]]"), (200, "Rating: [[2]]")]
    with ScriptedServer(script) as server:
        judge = JudgeOptions(base_url=server.url, model="gpt-4", parallel=1, prices={"input": 30.0, "output": 60.0},
                             backoff_seconds=0.01)
        judgments, scores = run_judging(answers, record, MT_BENCH, judge, tmp_path / "cache", "tiny")
    assert len(server.requests) == 6
    first = server.requests[0]
    assert first["model"] == "gpt-4" and first["temperature"] == 0.0 and first["max_tokens"] == 2048
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    # FastChat's model_judgment schema, in FastChat's match order
    assert set(judgments[0]) == {"question_id", "model", "judge", "user_prompt", "judgment", "score", "turn", "tstamp"}
    assert [(j["question_id"], j["turn"], j["judge"][1], j["score"]) for j in judgments] == [
        (81, 1, "single-v1", 9), (141, 1, "single-v1", 5), (111, 1, "single-math-v1", -1),
        (81, 2, "single-v1-multi-turn", 6), (141, 2, "single-v1-multi-turn", 7),
        (111, 2, "single-math-v1-multi-turn", 2)]
    assert judgments[0]["judge"] == ["gpt-4", "single-v1"] and judgments[0]["model"] == "tiny"
    assert scores["status"] == "ok" and scores["score"] == pytest.approx((9 + 5 + 6 + 7 + 2) / 5)
    assert scores["categories"] == {"writing": 7.5, "math": 2.0, "stem": 6.0}
    judge_usage = scores["judge"]
    assert judge_usage["calls"] == 6 and judge_usage["cache_hits"] == 0 and judge_usage["prompt_tokens"] == 600
    assert judge_usage["cost_usd"] == pytest.approx((600 * 30 + 60 * 60) / 1e6)

    # a re-score pays nothing: the judge is gone, the cache answers every request
    dead = JudgeOptions(base_url=f"http://127.0.0.1:{free_port()}/v1", model="gpt-4", parallel=1, max_retries=0)
    again, rescored = run_judging(answers, record, MT_BENCH, dead, tmp_path / "cache", "tiny")
    assert rescored["judge"]["calls"] == 0 and rescored["judge"]["cache_hits"] == 6
    assert rescored["judge"]["cost_usd"] == 0 and rescored["judge"]["total_cost_usd"] == judge_usage["cost_usd"]
    assert [j["judgment"] for j in again] == [j["judgment"] for j in judgments]

    # another judge model is another key: it is asked, and a dead one fails the stage (the cache keeps what was paid)
    with pytest.raises(ServerError, match="APIConnectionError"):
        run_judging(answers, record, MT_BENCH, JudgeOptions(**{**dead.__dict__, "model": "other"}),
                    tmp_path / "cache", "tiny")


def test_failed_answers_pass_their_status_on(tmp_path):
    judgments, scores = run_judging([], {"status": "train_failed", "error": "objective raised"}, MT_BENCH,
                                    JudgeOptions(base_url="http://127.0.0.1:9/v1"), None, "gen1-cand0")
    assert judgments == [] and scores["status"] == "train_failed" and scores["error"] == "objective raised"


def test_judge_options_name_unknown_keys():
    with pytest.raises(ValueError, match=r"benchmarks.mt_bench.judge: unknown key\(s\) \['modle'\]"):
        mt_bench.judge_options({"modle": "gpt-4"})


@pytest.fixture(scope="module")
def llama_judge(llama_url):
    return llama_url


def test_real_llama_judge_and_cached_rescore(llama_judge, tmp_path):
    """A real model behind the real protocol: its ratings are poor; the schema, parsing, usage and cache are not."""
    answers, record = judged_answers(tmp_path)
    answers = [a for a in answers if a["question_id"] == 111]  # the math question: reference-based prompts, both turns
    judge = JudgeOptions(base_url=llama_judge, model="smollm2", max_tokens=24, parallel=1,
                         prices={"input": 30.0, "output": 60.0})
    started = time.monotonic()
    judgments, scores = run_judging(answers, record, MT_BENCH, judge, tmp_path / "cache", "tiny")
    first_seconds = time.monotonic() - started
    assert [j["judge"] for j in judgments] == [["smollm2", "single-math-v1"], ["smollm2", "single-math-v1-multi-turn"]]
    for j in judgments:
        assert j["score"] == parse_rating(j["judgment"])  # whatever the model wrote, parsed as FastChat does
    usage = scores["judge"]
    assert usage["calls"] == 2 and usage["prompt_tokens"] > 600 and 0 < usage["completion_tokens"] <= 2 * 24
    assert usage["cost_usd"] == pytest.approx((usage["prompt_tokens"] * 30 + usage["completion_tokens"] * 60) / 1e6)
    assert scores["n_unparsed"] == sum(j["score"] == -1 for j in judgments)
    assert (scores["status"] == "ok") == (scores["n_unparsed"] < 2)

    started = time.monotonic()
    again, rescored = run_judging(answers, record, MT_BENCH, judge, tmp_path / "cache", "tiny")
    assert rescored["judge"]["calls"] == 0 and rescored["judge"]["cache_hits"] == 2
    assert [j["judgment"] for j in again] == [j["judgment"] for j in judgments]
    assert time.monotonic() - started < first_seconds / 3
    cached = list((tmp_path / "cache").rglob("*.json"))
    assert len(cached) == 2 and "request" in json.loads(cached[0].read_text())


def test_cli_writes_fastchat_files(tmp_path):
    answers, record = judged_answers(tmp_path)
    (tmp_path / "answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    (tmp_path / "answers.json").write_text(json.dumps(record))
    with ScriptedServer([(200, "Rating: [[4]]")] * 6) as server:
        mt_bench.main(["--answers", str(tmp_path / "answers.jsonl"), "--answers-record", str(tmp_path / "answers.json"),
                       "--data-dir", str(MT_BENCH), "--judge", json.dumps({"base_url": server.url, "parallel": 2}),
                       "--model-id", "tiny", "--judgments", str(tmp_path / "j.jsonl"), "--scores", str(tmp_path / "s.json")])
    import pandas as pd

    # what FastChat's show_result.py does with the file
    frame = pd.read_json(tmp_path / "j.jsonl", lines=True)[["model", "score", "turn"]]
    frame = frame[frame["score"] != -1]
    assert frame.groupby(["model", "turn"]).mean()["score"].tolist() == [4.0, 4.0]
    assert json.loads((tmp_path / "s.json").read_text())["score"] == 4.0
    assert len(read_jsonl(tmp_path / "j.jsonl")) == 6
