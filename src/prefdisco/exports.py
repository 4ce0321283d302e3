"""Exports for the benchmarks' own tools: MT-Bench answers and judgments in FastChat's layout.

``<out>/data/mt_bench/model_answer/<model>.jsonl`` and ``<out>/data/mt_bench/model_judgment/<judge>_single.jsonl``,
one model per objective, so that ``python -m fastchat.llm_judge.show_result --bench-name mt_bench --judge-model
<judge>`` run in ``<out>`` prints the scores of our ``scores.json`` (FastChat averages the judgments with a rating,
as :func:`prefdisco.judging.mt_bench.mt_bench_scores` does).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .cli import setup_logging
from .io import read_jsonl, write_json, write_jsonl

log = logging.getLogger(__name__)


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", nargs="+", required=True, help="model=ANSWERS.jsonl:JUDGMENTS.jsonl")
    parser.add_argument("--judge", default="gpt-4")
    parser.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    units = {}
    for item in args.units:
        model, paths = item.split("=", 1)
        answers, judgments = paths.split(":", 1)
        units[model] = (Path(answers), Path(judgments))
    export_fastchat(units, args.output_dir, args.judge)


if __name__ == "__main__":
    main()
