"""FastChat's own show_result reads our exported MT-Bench judgments and prints our scores."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os

import pytest

from prefdisco.exports import export_fastchat
from prefdisco.judging.mt_bench import mt_bench_scores


def test_fastchat_show_result_prints_our_scores(tmp_path):
    from fastchat.llm_judge.show_result import display_result_single

    questions = [{"question_id": q, "category": "writing" if q == 81 else "math", "turns": ["a", "b"]} for q in (81, 111)]
    units = {}
    ours = {}
    for model, ratings in {"dpo": [8, 6, 7, -1], "lrml": [9, 7, 5, 6]}.items():
        judgments = [{"question_id": q, "model": f"experiments-x-{model}", "judge": ["gpt-4", "single-v1"],
                      "score": r, "turn": t} for (q, t), r in zip([(81, 1), (81, 2), (111, 1), (111, 2)], ratings)]
        answers = [{"question_id": q, "model_id": f"experiments-x-{model}", "choices": [{"turns": ["x", "y"]}]}
                   for q in (81, 111)]
        (tmp_path / f"{model}_a.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
        (tmp_path / f"{model}_j.jsonl").write_text("".join(json.dumps(j) + "\n" for j in judgments))
        units[model] = (tmp_path / f"{model}_a.jsonl", tmp_path / f"{model}_j.jsonl")
        ours[model] = mt_bench_scores(judgments, questions)["score"]
    export_fastchat(units, tmp_path / "fastchat")
    assert (tmp_path / "fastchat" / "data" / "mt_bench" / "model_answer" / "lrml.jsonl").exists()
    printed = io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path / "fastchat")
    try:
        with contextlib.redirect_stdout(printed):
            display_result_single(argparse.Namespace(bench_name="mt_bench", judge_model="gpt-4", input_file=None,
                                                     model_list=None))
    finally:
        os.chdir(cwd)
    average = printed.getvalue().split("########## Average ##########")[1]
    for model, score in ours.items():
        line = next(row for row in average.splitlines() if row.startswith(model))
        assert float(line.split()[-1]) == pytest.approx(score, abs=1e-5)
