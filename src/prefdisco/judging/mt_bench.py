"""Stage: MT-Bench single-answer grading, as FastChat's ``gen_judgment.py --mode single``, with any judge.

For every answer: turn 1 is graded with ``single-v1`` (``single-math-v1`` with the GPT-4 reference answer for math,
reasoning and coding), turn 2 with their ``-multi-turn`` forms, which show the whole conversation. The judge's
messages are built as FastChat builds them (its ``chatgpt`` conversation template: the judge prompt's system
message, then the filled template) and sent at temperature 0 to an OpenAI-compatible endpoint through
:class:`prefdisco.llm_client.ChatClient`, whose content-addressed cache means a re-score never pays twice. The
rating is read with FastChat's ``[[rating]]`` pattern, then its ``[rating]`` fallback, and is -1 when neither
matches. Judgments are written in FastChat's ``model_judgment`` JSONL schema, so its ``show_result.py`` reads them.
The reference answers are GPT-4's (``reference_answer/gpt-4.jsonl``, the only ones pinned) whatever the judge;
FastChat would look for a file named after the judge model.

Scores follow ``show_result.py``: judgments rated -1 are left out; turn 1, turn 2, overall (both turns) and per
category (both turns, as in FastChat's radar plot).

CLI::

    python -m prefdisco.judging.mt_bench --answers A.jsonl --answers-record A.json --data-dir D --judge JSON
        --cache C --model-id ID --judgments J.jsonl --scores S.json
"""

from __future__ import annotations

import argparse
import ast
import logging
import math
import re
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..cli import json_option, setup_logging
from ..io import read_json, read_jsonl, write_json, write_jsonl
from ..llm_client import ChatClient, Completion, EndpointOptions, ReplyCache, endpoint_options
from ..options import options_from
from ..records import EVAL_FAILED, OK

log = logging.getLogger(__name__)

# FastChat (fastchat/llm_judge/common.py): categories graded against a reference answer, and the rating patterns.
NEED_REF_CATS = ("math", "reasoning", "coding", "arena-hard-200")
ONE_SCORE_PATTERN = re.compile(r"\[\[(\d+\.?\d*)\]\]")
ONE_SCORE_PATTERN_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
REFERENCE_MODEL = "gpt-4"  # reference_answer/gpt-4.jsonl


@dataclass
class JudgeOptions:
    """The MT-Bench judge: FastChat's defaults (GPT-4 at temperature 0, up to 2048 tokens), any endpoint."""

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 2048
    timeout_seconds: float = 120
    max_retries: int = 6
    max_retry_seconds: float = 600
    backoff_seconds: float = 2.0
    parallel: int = 8  # judge requests in flight at once (FastChat's --parallel)
    prices: dict = field(default_factory=lambda: {"input": 30.0, "output": 60.0})  # gpt-4, USD per 1M tokens

    def endpoint(self) -> EndpointOptions:
        return endpoint_options(self)


def judge_options(raw: dict) -> JudgeOptions:
    return options_from(JudgeOptions, raw, "benchmarks.mt_bench.judge")


@dataclass
class Match:
    """One answer turn to grade (FastChat's MatchSingle)."""

    question: dict
    answer: dict
    prompt: dict  # the judge prompt record (single-v1 ...)
    reference: dict | None = None
    multi_turn: bool = False


def parse_rating(judgment: str) -> float | int:
    """FastChat's single-answer rating: ``[[N]]``, else ``[N]``, else -1."""
    match = re.search(ONE_SCORE_PATTERN, judgment) or re.search(ONE_SCORE_PATTERN_BACKUP, judgment)
    return ast.literal_eval(match.groups()[0]) if match else -1


def make_matches(questions: list[dict], answers: dict[int, dict], prompts: dict[str, dict],
                 references: dict[int, dict]) -> list[Match]:
    """Every (answer, turn) to grade, in FastChat's order: turn 1 general, turn 1 with reference, then turn 2."""
    general = [q for q in questions if q["category"] not in NEED_REF_CATS]
    with_reference = [q for q in questions if q["category"] in NEED_REF_CATS]
    for q in with_reference:
        if q["question_id"] not in references:
            raise ValueError(f"question {q['question_id']} ({q['category']}) has no reference answer in "
                             f"reference_answer/{REFERENCE_MODEL}.jsonl")
    missing = [q["question_id"] for q in questions if q["question_id"] not in answers]
    if missing:
        raise ValueError(f"the model answered no question(s) {missing}")
    matches = []
    for group, name, multi_turn in ((general, "single-v1", False), (with_reference, "single-math-v1", False),
                                    (general, "single-v1-multi-turn", True),
                                    (with_reference, "single-math-v1-multi-turn", True)):
        for q in group:
            if multi_turn and len(q["turns"]) != 2:
                continue
            reference = references.get(q["question_id"]) if "math" in name else None
            matches.append(Match(q, answers[q["question_id"]], prompts[name], reference, multi_turn))
    return matches


def judge_messages(match: Match) -> tuple[str, list[dict]]:
    """(user prompt, chat messages) for one match, as FastChat's ``run_judge_single`` builds them."""
    from fastchat.conversation import get_conv_template

    kwargs = {}
    if match.reference is not None:
        kwargs["ref_answer_1"] = match.reference["choices"][0]["turns"][0]
        if match.multi_turn:
            kwargs["ref_answer_2"] = match.reference["choices"][0]["turns"][1]
    answer_turns = match.answer["choices"][0]["turns"]
    template = match.prompt["prompt_template"]
    if match.multi_turn:
        user_prompt = template.format(question_1=match.question["turns"][0], question_2=match.question["turns"][1],
                                      answer_1=answer_turns[0], answer_2=answer_turns[1], **kwargs)
    else:
        user_prompt = template.format(question=match.question["turns"][0], answer=answer_turns[0], **kwargs)
    # FastChat maps OpenAI judges to its "chatgpt" template: a system message, then the user prompt.
    conversation = get_conv_template("chatgpt")
    conversation.set_system_message(match.prompt["system_prompt"])
    conversation.append_message(conversation.roles[0], user_prompt)
    conversation.append_message(conversation.roles[1], None)
    return user_prompt, conversation.to_openai_api_messages()


def judge_matches(matches: list[Match], client: ChatClient, judge: JudgeOptions, model_id: str
                  ) -> tuple[list[dict], list[Completion]]:
    """FastChat model_judgment records, one per match, and the judge's completions (usage, cache hits)."""

    def grade(match: Match) -> tuple[dict, Completion]:
        user_prompt, messages = judge_messages(match)
        completion = client.complete(messages, temperature=judge.temperature, max_tokens=judge.max_tokens)
        judgment = completion.content or ""
        return {
            "question_id": match.question["question_id"],
            "model": model_id,
            "judge": [judge.model, match.prompt["name"]],
            "user_prompt": user_prompt,
            "judgment": judgment,
            "score": parse_rating(judgment),
            "turn": 2 if match.multi_turn else 1,
            "tstamp": time.time(),
        }, completion

    with ThreadPoolExecutor(max(1, judge.parallel)) as pool:
        graded = list(pool.map(grade, matches))
    return [g[0] for g in graded], [g[1] for g in graded]


def _mean_sem(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = statistics.fmean(values)
    sem = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
    return mean, sem


def mt_bench_scores(judgments: list[dict], questions: list[dict]) -> dict:
    """Turn 1, turn 2, overall and per-category mean ratings; ratings of -1 (unparsed) are left out."""
    category = {q["question_id"]: q["category"] for q in questions}
    valid = [j for j in judgments if j["score"] != -1]
    overall, overall_sem = _mean_sem([float(j["score"]) for j in valid])
    categories: dict[str, float] = {}
    for name in dict.fromkeys(q["category"] for q in questions):
        mean, _ = _mean_sem([float(j["score"]) for j in valid if category[j["question_id"]] == name])
        if mean is not None:
            categories[name] = mean
    return {
        "score": overall,
        "score_sem": overall_sem,
        "turn_1": _mean_sem([float(j["score"]) for j in valid if j["turn"] == 1])[0],
        "turn_2": _mean_sem([float(j["score"]) for j in valid if j["turn"] == 2])[0],
        "categories": categories,
        "n_judgments": len(judgments),
        "n_unparsed": len(judgments) - len(valid),
        # per question (question order), the mean over its rated turns: the prompts of the seeds x prompts intervals
        "per_question": [_mean_sem([float(j["score"]) for j in valid if j["question_id"] == q["question_id"]])[0]
                         for q in questions],
    }


def usage_summary(completions: list[Completion], judge: JudgeOptions) -> dict:
    sent = [c for c in completions if not c.cached]
    return {
        "model": judge.model,
        "base_url": judge.base_url,
        "requests": len(completions),
        "cache_hits": len(completions) - len(sent),
        "calls": len(sent),
        "prompt_tokens": sum(c.prompt_tokens for c in sent),
        "completion_tokens": sum(c.completion_tokens for c in sent),
        "cost_usd": round(sum(c.cost_usd for c in sent), 8),
        # what the judgments cost when they were first made, cached or not
        "total_cost_usd": round(sum(c.cost_usd for c in completions), 8),
    }


def load_judge_data(data_dir: Path) -> tuple[list[dict], dict[str, dict], dict[int, dict]]:
    data_dir = Path(data_dir)
    questions = read_jsonl(data_dir / "question.jsonl")
    prompts = {p["name"]: p for p in read_jsonl(data_dir / "judge_prompts.jsonl")}
    references = {r["question_id"]: r for r in read_jsonl(data_dir / "reference_answer" / f"{REFERENCE_MODEL}.jsonl")}
    return questions, prompts, references


def run_judging(answers: list[dict], answers_record: dict, data_dir: Path, judge: JudgeOptions, cache_dir: Path | None,
                model_id: str) -> tuple[list[dict], dict]:
    """(judgments, scores record) of one model's answers."""
    started = time.monotonic()
    record = {"model_id": model_id, "benchmark": "mt_bench", "status": answers_record.get("status", OK),
              "error": answers_record.get("error"), "answers_wall_seconds": answers_record.get("wall_seconds")}
    if record["status"] != OK:
        return [], {**record, "score": None, "judge": None, "wall_seconds": 0.0}
    questions, prompts, references = load_judge_data(data_dir)
    by_id = {a["question_id"]: a for a in answers}
    questions = [q for q in questions if q["question_id"] in by_id]  # the answered subset (question_ids)
    matches = make_matches(questions, by_id, prompts, references)
    client = ChatClient(judge.endpoint(), ReplyCache(cache_dir))
    judgments, completions = judge_matches(matches, client, judge, model_id)
    scores = mt_bench_scores(judgments, questions)
    if scores["score"] is None:
        record.update(status=EVAL_FAILED,
                      error=f"the judge {judge.model} gave no parsable rating in {len(judgments)} judgments")
    record.update(scores)
    record["judge"] = usage_summary(completions, judge)
    record["wall_seconds"] = time.monotonic() - started
    return judgments, record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=Path, required=True, help="model_answer JSONL")
    parser.add_argument("--answers-record", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True, help="MT-Bench data folder")
    parser.add_argument("--judge", type=json_option, default={}, help="judge endpoint options (JSON)")
    parser.add_argument("--cache", type=Path, default=None, help="folder of the judge reply cache")
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--judgments", type=Path, required=True, help="output: model_judgment JSONL")
    parser.add_argument("--scores", type=Path, required=True, help="output: scores JSON")
    args = parser.parse_args(argv)
    setup_logging()

    judgments, record = run_judging(read_jsonl(args.answers), read_json(args.answers_record), args.data_dir,
                                    judge_options(args.judge), args.cache, args.model_id)
    write_jsonl(args.judgments, judgments)
    write_json(args.scores, record)
    log.info("%s: MT-Bench %s (%s); judge %s", args.model_id, record.get("score"), record["status"], record["judge"])


if __name__ == "__main__":
    main()
