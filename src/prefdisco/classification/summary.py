"""Stage: summary.md of a classification discovery run: the verdict against the control, then the ranked archive.

    python -m prefdisco.classification.summary --archive results/<run>/archive.jsonl \\
        --verdict results/<run>/verdict.json --output results/<run>/summary.md

The verdict is the preference family's (:func:`prefdisco.stages.cascade.compare_with_control`, written by the cascade's
final stage): Holm-corrected one-sided tests of every discovered loss against the control. Every number that ranks
or compares losses carries its 95% interval over training seeds x validation examples; test accuracy is reported
(first seed, Wilson interval over the test images), never used for selection.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

from prefdisco.cli import setup_logging
from prefdisco.intervals import EXAMPLE_METHOD, EXAMPLES, ranking_score
from prefdisco.io import read_json, read_jsonl, write_text
from prefdisco.objectives import display_name
from prefdisco.statistics import HOLM

log = logging.getLogger(__name__)


def _interval(estimate: Mapping | None, signed: bool = False) -> str:
    if not estimate or not math.isfinite(estimate.get("low", math.nan)):
        return "-"
    sign = "+" if signed else ""
    return f"{estimate['mean']:{sign}.4f} [{estimate['low']:{sign}.4f}, {estimate['high']:{sign}.4f}]"


def _label(record: Mapping) -> str:
    return display_name(record["library_name"]) if record.get("library_name") else f"{record['id']} {record['name']}"


def ranked(records: Sequence[dict]) -> list[dict]:
    """The evaluated records, best first by the search's rule: the lower 95% bound of fitness."""
    evaluated = [r for r in records if r.get("status") == "ok" and r.get("fitness") is not None]
    return sorted(evaluated, key=lambda r: (ranking_score(r), float(r["fitness"])), reverse=True)


def opening(verdict: Mapping) -> str:
    """The verdict sentence, then what its numbers are over."""
    control = display_name(verdict["control"])
    text = (f"{verdict['sentence']}\n\nFitness is validation accuracy; test accuracy is reported, never selected on. "
            f"Intervals are 95% over training seeds x {EXAMPLES} ({EXAMPLE_METHOD}). vs {control} is the accuracy "
            f"difference to {control}, paired by training seed and validation example; p ({HOLM}) is its one-sided "
            f"p-value of being better, {HOLM}-adjusted over the {verdict['compared']} discovered losses. Ranked by "
            "the lower bound of fitness.")
    planned = verdict.get("detectable_difference")
    if planned:
        text += (f" At {planned['seeds']} seed(s) x {planned['prompts']} {EXAMPLES} this budget detects an accuracy "
                 f"difference to {control} of {planned['value']:.4f} (80% power, 5% level; from the control's seed "
                 "and residual variance components).")
    return text


def table(records: Sequence[dict], control: str) -> list[str]:
    lines = [f"| rank | objective | seeds | fitness (val. accuracy) [95%] | vs {display_name(control)} [95%] "
             f"| p ({HOLM}) | test accuracy, first seed [95% Wilson] | seeds: why |",
             "| ---: | --- | ---: | --- | --- | ---: | --- | --- |"]
    for rank, record in enumerate(ranked(records), start=1):
        intervals = record.get("intervals") or {}
        metrics = record.get("metrics") or {}
        p_holm = intervals.get("p_better_holm")
        test = (f"{metrics['test_accuracy']:.4f} [{metrics['test_ci_low']:.4f}, {metrics['test_ci_high']:.4f}]"
                if "test_accuracy" in metrics else "-")
        lines.append(f"| {rank} | {_label(record)} | {len(intervals.get('seeds') or [1])} "
                     f"| {_interval(intervals.get('fitness'))} | {_interval(intervals.get('vs_control'), True)} "
                     f"| {'-' if p_holm is None else f'{p_holm:.3g}'} | {test} "
                     f"| {intervals.get('seeds_reason', '-')} |")
    return lines


def summary_markdown(records: Sequence[dict], verdict: Mapping, run: str) -> str:
    failed = [r for r in records if not (r.get("status") == "ok" and r.get("fitness") is not None)]
    counts = Counter(record.get("status") for record in failed)
    parts = [f"# Classification objectives: run {run}", "", opening(verdict), "", *table(records, verdict["control"])]
    if failed:
        parts += ["", f"Not evaluated: {len(failed)} record(s) "
                      f"({', '.join(f'{status} {n}' for status, n in sorted(counts.items()))})."]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True, help="the final archive (every seed)")
    parser.add_argument("--verdict", type=Path, required=True, help="verdict.json of the cascade's final stage")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    verdict = read_json(args.verdict)
    write_text(args.output, summary_markdown(read_jsonl(args.archive), verdict, args.archive.parent.name))
    log.info("%s", verdict["sentence"])


if __name__ == "__main__":
    main()
