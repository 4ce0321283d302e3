"""Exports for the benchmarks' own tools: MT-Bench in FastChat's layout, AlpacaEval in alpaca_eval's.

FastChat: ``<out>/data/mt_bench/model_answer/<model>.jsonl`` and ``<out>/data/mt_bench/model_judgment/<judge>_single.jsonl``,
one model per objective, so that ``python -m fastchat.llm_judge.show_result --bench-name mt_bench --judge-model
<judge>`` run in ``<out>`` prints the scores of our ``scores.json`` (FastChat averages the judgments with a rating,
as :func:`prefdisco.judging.mt_bench.mt_bench_scores` does).

AlpacaEval: ``<out>/<model>/model_outputs.json`` and, per reference, ``<out>/<model>/<reference>/reference_outputs.json``
and ``<out>/<model>/<reference>/annotations.json`` (the judge's annotations, which alpaca_eval reads back as its
annotation cache), so that ::

    alpaca_eval --model_outputs M/model_outputs.json --reference_outputs M/R/reference_outputs.json \
        --annotators_config weighted_alpaca_eval_gpt4_turbo --caching_path M/R/annotations.json

prints our leaderboard row (``<out>/leaderboard.csv``) without asking a judge anything. The outputs keep the
evaluation set's instruction order, the index alpaca_eval's length control looks each instruction's difficulty up by.

CLI::

    python -m prefdisco.stages.exports fastchat --units model=ANSWERS.jsonl:JUDGMENTS.jsonl ... --output-dir D
    python -m prefdisco.stages.exports alpaca-eval --units model=UNIT_DIR ... --references gpt4_turbo sft
        --data-dir ALPACA_DATA --sft-outputs S.json --output-dir D
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from ..cli import setup_logging
from ..io import read_json, read_jsonl, write_json, write_jsonl, write_text

log = logging.getLogger(__name__)

ALPACA_ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
LEADERBOARD_COLUMNS = ["model", "reference", "status", "win_rate", "standard_error", "lc_win_rate",
                       "lc_standard_error", "n_total", "avg_length"]


def export_fastchat(units: dict[str, tuple[Path, Path]], out_dir: Path, judge: str = "gpt-4") -> dict:
    """``units``: {model name: (model_answer.jsonl, model_judgment.jsonl)}; returns what was written."""
    folder = Path(out_dir) / "data" / "mt_bench"
    judgments = []
    for model, (answers_path, judgments_path) in sorted(units.items()):
        write_jsonl(folder / "model_answer" / f"{model}.jsonl",
                    [{**a, "model_id": model} for a in read_jsonl(answers_path)])
        judgments += [{**j, "model": model} for j in read_jsonl(judgments_path)]
    write_jsonl(folder / "model_judgment" / f"{judge}_single.jsonl", judgments)
    listing = {"models": sorted(units), "judge": judge, "n_judgments": len(judgments)}
    write_json(Path(out_dir) / "manifest.json", listing)
    return listing


def export_alpaca_eval(units: dict[str, Path], references: list[str], reference_outputs: dict[str, list[dict]],
                       out_dir: Path) -> pd.DataFrame:
    """``units``: {model name: the unit's alpaca_eval folder (model_outputs.json, <reference>/annotations.json and
    metrics.json)}; ``reference_outputs``: {reference: its outputs}. Returns our leaderboard rows, as written."""
    out_dir = Path(out_dir)
    rows = []
    for model, folder in sorted(units.items()):
        outputs = [{**o, "generator": model} for o in read_json(Path(folder) / "model_outputs.json")]
        write_json(out_dir / model / "model_outputs.json", outputs)
        answered = {o["instruction"] for o in outputs}
        for reference in references:
            metrics = read_json(Path(folder) / reference / "metrics.json")
            rows.append({"model": model, "reference": reference, **{k: metrics.get(k) for k in LEADERBOARD_COLUMNS[2:]}})
            if metrics.get("status") != "ok":  # nothing was judged: the leaderboard row says why
                continue
            by_instruction = {r["instruction"]: r for r in reference_outputs[reference]}
            missing = sorted(answered - set(by_instruction))
            if missing:
                raise ValueError(f"AlpacaEval export of {model}: reference {reference!r} has no output for "
                                 f"{len(missing)} instruction(s), e.g. {missing[0][:80]!r}")
            write_json(out_dir / model / reference / "reference_outputs.json",
                       [{**by_instruction[o["instruction"]], "generator": by_instruction[o["instruction"]].get("generator")
                         or reference} for o in outputs])
            annotations = read_json(Path(folder) / reference / "annotations.json")
            write_json(out_dir / model / reference / "annotations.json",
                       [{**a, "generator_2": model} for a in annotations])
    table = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
    write_text(out_dir / "leaderboard.csv", table.to_csv(index=False))
    write_json(out_dir / "manifest.json", {"models": sorted(units), "references": references,
                                           "annotator": ALPACA_ANNOTATOR})
    return table


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"{flag} {item!r}: expected model=PATH")
        model, path = item.split("=", 1)
        pairs[model] = path
    return pairs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="benchmark", required=True)
    fastchat = sub.add_parser("fastchat")
    fastchat.add_argument("--units", nargs="+", required=True, help="model=ANSWERS.jsonl:JUDGMENTS.jsonl")
    fastchat.add_argument("--judge", default="gpt-4")
    alpaca = sub.add_parser("alpaca-eval")
    alpaca.add_argument("--units", nargs="+", required=True, help="model=the unit's alpaca_eval folder")
    alpaca.add_argument("--references", nargs="+", required=True, choices=["gpt4_turbo", "sft"])
    alpaca.add_argument("--data-dir", type=Path, required=True, help="AlpacaEval data folder (GPT-4 Turbo's outputs)")
    alpaca.add_argument("--sft-outputs", type=Path, default=None, help="the SFT reference's model_outputs.json")
    for p in sub.choices.values():
        p.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    if args.benchmark == "fastchat":
        units = {}
        for model, paths in _pairs(args.units, "--units").items():
            answers, judgments = paths.split(":", 1)
            units[model] = (Path(answers), Path(judgments))
        export_fastchat(units, args.output_dir, args.judge)
        return
    reference_outputs = {"gpt4_turbo": read_json(args.data_dir / "alpaca_eval_gpt4_baseline.json")}
    if "sft" in args.references:
        if args.sft_outputs is None:
            parser.error("--references sft needs --sft-outputs")
        reference_outputs["sft"] = read_json(args.sft_outputs)
    units = {model: Path(path) for model, path in _pairs(args.units, "--units").items()}
    export_alpaca_eval(units, args.references, reference_outputs, args.output_dir)


if __name__ == "__main__":
    main()
