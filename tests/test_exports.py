"""FastChat's own show_result reads our exported MT-Bench judgments and prints our scores."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
from pathlib import Path

import pytest

from prefdisco.stages.exports import export_fastchat
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


def test_alpaca_eval_reads_our_export_and_prints_our_leaderboard_rows(tmp_path):
    """Judge two models with our stage (scripted judge on loopback), export them, and let alpaca_eval's own evaluate
    recompute each row from the exported files alone: its annotation cache, no judge."""
    import math

    from loopback import ScriptedServer

    from prefdisco.stages.exports import export_alpaca_eval
    from prefdisco.io import read_json
    from prefdisco.judging import alpaca_eval as stage

    data = Path(__file__).parent / "fixtures" / "judging" / "alpaca_eval"
    rows = read_json(data / "alpaca_eval_gpt4_baseline.json")
    units = {}
    with ScriptedServer(lambda request: (200, "m"), logprobs={"m": math.log(0.7), "M": math.log(0.3)}) as server:
        for model, answer in {"dpo": "Short.", "lrml": "A longer and more detailed answer. " * 3}.items():
            folder = tmp_path / "run" / model / "alpaca_eval"
            folder.mkdir(parents=True)
            outputs = [{"dataset": r["dataset"], "instruction": r["instruction"], "generator": f"experiments-x-{model}",
                        "output": answer if i % 2 else f"{answer} {i}"} for i, r in enumerate(rows)]
            (folder / "model_outputs.json").write_text(json.dumps(outputs))
            (folder / "outputs.json").write_text(json.dumps({"status": "ok"}))
            stage.main(["--model-outputs", str(folder / "model_outputs.json"), "--model-record",
                        str(folder / "outputs.json"), "--reference", "gpt4_turbo", "--data-dir", str(data),
                        "--annotator", json.dumps({"base_url": server.url, "parallel": 1}),
                        "--model-id", f"experiments-x-{model}", "--annotations",
                        str(folder / "gpt4_turbo" / "annotations.json"), "--metrics",
                        str(folder / "gpt4_turbo" / "metrics.json")])
            units[model] = folder
        asked = len(server.requests)
    ours = export_alpaca_eval(units, ["gpt4_turbo"], {"gpt4_turbo": rows}, tmp_path / "export")
    assert len(ours) == 2 and (tmp_path / "export" / "leaderboard.csv").exists()

    def no_judge(*args, **kwargs):
        raise AssertionError("alpaca_eval asked the judge: the exported annotations were not used")

    main = stage.import_alpaca_eval()
    # the library's own weighted GPT-4 Turbo config (prompt, parser, swap), its completion function left to us
    config = stage.annotator_config_file(tmp_path / "annotator", top_logprobs=5)
    for _, row in ours.iterrows():
        folder = tmp_path / "export" / row["model"]
        with stage.local_hub_files({"df_gamed.csv": data / "df_gamed.csv"}):  # its length control's one download
            leaderboard, _ = main.evaluate(
                model_outputs=str(folder / "model_outputs.json"),
                reference_outputs=str(folder / "gpt4_turbo" / "reference_outputs.json"),
                annotators_config=str(config), caching_path=str(folder / "gpt4_turbo" / "annotations.json"),
                output_path=None, precomputed_leaderboard=None, is_return_instead_of_print=True,
                fn_completions=no_judge)
        theirs = leaderboard.loc[row["model"]]
        assert theirs["win_rate"] == pytest.approx(row["win_rate"])
        assert theirs["standard_error"] == pytest.approx(row["standard_error"])
        assert theirs["length_controlled_winrate"] == pytest.approx(row["lc_win_rate"])
        assert theirs["n_total"] == row["n_total"] == len(rows)
    assert asked == 2 * len(rows)
    assert ours.set_index("model").loc["dpo", "avg_length"] < ours.set_index("model").loc["lrml", "avg_length"]
