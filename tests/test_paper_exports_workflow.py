"""`snakemake paper` on a judged chat run exports MT-Bench in FastChat's layout and AlpacaEval in alpaca_eval's, and
the libraries' own code on those exports gives back our scores and our leaderboard rows. The run is the shared chat
run (tests/conftest.py::chat_run): a scripted judge on loopback, MT-Bench ratings that differ per answer, AlpacaEval
preferences from log-probabilities."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tiny_runs import CHAT_FIXTURES as FIXTURES

pytestmark = pytest.mark.workflow


def test_paper_exports_are_read_by_fastchat_and_alpaca_eval(chat_run, tmp_path):
    from fastchat.llm_judge.show_result import display_result_single

    from prefdisco.judging import alpaca_eval as stage

    run = chat_run / "results" / "chat"
    selection = json.loads((run / "alpaca_eval" / "selection.json").read_text())
    assert {s["library_name"] for s in selection} >= {"dpo", "lrml"}
    names = {s["unit"]: s["library_name"] or s["id"] for s in selection}  # as the exports name them

    # FastChat's show_result, run in the export folder, prints each objective's MT-Bench score from our scores.json
    exported = run / "exports" / "fastchat"
    printed = io.StringIO()
    cwd = os.getcwd()
    os.chdir(exported)
    try:
        with contextlib.redirect_stdout(printed):
            display_result_single(argparse.Namespace(bench_name="mt_bench", judge_model="smollm2-judge",
                                                     input_file=None, model_list=None))
    finally:
        os.chdir(cwd)
    average = printed.getvalue().split("########## Average ##########")[1]
    scores = {}
    for entry in selection:
        ours = json.loads((run / entry["unit"] / "mt_bench" / "scores.json").read_text())["score"]
        line = next(row for row in average.splitlines() if row.startswith(names[entry["unit"]]))
        assert float(line.split()[-1]) == pytest.approx(ours, abs=1e-5)
        scores[names[entry["unit"]]] = ours
    assert scores["dpo"] != scores["lrml"]  # the two objectives' answers differ, and so do their scores

    # alpaca_eval's evaluate on the exported files recomputes every leaderboard row, from its cache alone
    exported = run / "exports" / "alpaca_eval"
    leaderboard = pd.read_csv(exported / "leaderboard.csv")
    assert sorted(zip(leaderboard["model"], leaderboard["reference"])) == sorted(
        (name, reference) for name in names.values() for reference in ("gpt4_turbo", "sft"))
    table2 = pd.read_csv(run / "alpaca_eval" / "table2.csv")

    def no_judge(*args, **kwargs):
        raise AssertionError("alpaca_eval asked the judge: the exported annotations were not used")

    main = stage.import_alpaca_eval()
    annotator = stage.annotator_config_file(tmp_path / "annotator", top_logprobs=5)  # the library's, minus its client
    for _, row in leaderboard.iterrows():
        folder = exported / row["model"]
        with stage.local_hub_files({"df_gamed.csv": FIXTURES / "alpaca_eval" / "df_gamed.csv"}):
            theirs, _ = main.evaluate(
                model_outputs=str(folder / "model_outputs.json"),
                reference_outputs=str(folder / row["reference"] / "reference_outputs.json"),
                annotators_config=str(annotator), caching_path=str(folder / row["reference"] / "annotations.json"),
                output_path=None, precomputed_leaderboard=None, is_return_instead_of_print=True,
                fn_completions=no_judge)
        theirs = theirs.loc[row["model"]]
        unit_id = next(s["id"] for s in selection if names[s["unit"]] == row["model"])
        ours = table2[(table2["id"] == unit_id) & (table2["reference"] == row["reference"])].iloc[0]
        assert theirs["win_rate"] == pytest.approx(ours["win_rate"]) == pytest.approx(row["win_rate"])
        assert theirs["standard_error"] == pytest.approx(ours["standard_error"])
        assert theirs["length_controlled_winrate"] == pytest.approx(ours["lc_win_rate"])
        assert theirs["n_total"] == ours["n_total"] == 3
    manifest = (chat_run / "results" / "paper" / "MANIFEST.md").read_text()
    assert "results/chat/exports/fastchat" in manifest and "results/chat/exports/alpaca_eval" in manifest


    # `snakemake --report` carries the ranked summary table and the run's resolved config
    import zipfile

    with zipfile.ZipFile(chat_run / "report.zip") as bundle:
        files = {Path(name).name: name for name in bundle.namelist()}
        assert "summary.csv" in files and "config.yaml" in files and "MANIFEST.md" in files
        assert bundle.read(files["summary.csv"]) == (run / "summary.csv").read_bytes()
        reported = yaml.safe_load(bundle.read(files["config.yaml"]))
    assert reported["run"] == "chat" and reported["benchmarks"]["alpaca_eval"]["top_k"] == 1
    assert reported["fitness"]["control"] == "dpo"  # a schema default, filled in
