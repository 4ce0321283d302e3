"""Figures of the judged benchmarks, drawn from result files only.

* :func:`plot_mt_bench_radar` -- MT-Bench score per category for the seed baselines, the best discovered
  objectives and the SFT reference (the paper's Fig. 4), from archive records.
* :func:`plot_lc_win_rate` -- AlpacaEval 2.0 length-controlled win rate per objective, one panel per reference
  (Fig. 1, right), from Table 2 (or from the paper's published numbers, which share its columns).

Each returns what it drew, so tests check the data rather than the pixels.

CLI::

    python -m prefdisco.judging.figures radar --archive A.jsonl [--reference-eval R.json] --output F.png [--top 3]
    python -m prefdisco.judging.figures lc-win-rate --table T.csv --output F.png
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..io import read_jsonl
from ..objectives import objective_label
from ..plotting import DPI, new_figure, no_data, save_figure
from ..records import finite, is_evaluated, read_reference_metrics

log = logging.getLogger(__name__)

# FastChat's radar order
MT_BENCH_CATEGORIES = ["writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"]


def _categories(metrics: dict | None) -> dict[str, float]:
    scores = ((metrics or {}).get("mt_bench") or {}).get("categories") or {}
    return {k: float(v) for k, v in scores.items() if finite(v) is not None}


def plot_mt_bench_radar(records: Sequence[dict], reference_metrics: dict | None, path: str | Path,
                        top: int = 3) -> dict[str, Any]:
    """Category scores of the gen-0 baselines, the ``top`` other evaluated candidates by fitness, and the SFT
    reference, on one radar; categories with no score in any series are left out."""
    with_scores = [r for r in records if _categories(r.get("metrics"))]
    seeds = [r for r in with_scores if r.get("generation") == 0]
    others = sorted((r for r in with_scores if r.get("generation") != 0 and is_evaluated(r)),
                    key=lambda r: -float(r["fitness"]))[:top]
    series = [(objective_label(r), _categories(r.get("metrics"))) for r in seeds + others]
    if _categories(reference_metrics):
        series.append(("SFT reference", _categories(reference_metrics)))
    present = {c for _, scores in series for c in scores}
    categories = [c for c in MT_BENCH_CATEGORIES if c in present] + sorted(present - set(MT_BENCH_CATEGORIES))

    fig = None
    if len(categories) < 3:
        fig, ax = new_figure((6.5, 6.0))
        no_data(ax, "No MT-Bench category scores to draw",
                f"{len(series)} judged models, {len(categories)} categories (a radar needs 3)")
    else:
        from matplotlib.figure import Figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = Figure(figsize=(7.5, 8.0), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(projection="polar")
        ax.set_theta_offset(math.pi / 2)  # first category on top, clockwise, as FastChat's radar
        ax.set_theta_direction(-1)
        angles = np.linspace(0, 2 * math.pi, len(categories), endpoint=False).tolist()
        for label, scores in series:
            values = [scores.get(c, np.nan) for c in categories]
            style = {"linestyle": "--", "color": "black"} if label == "SFT reference" else {}
            ax.plot(angles + angles[:1], values + values[:1], linewidth=1.5, label=label, **style)
            ax.fill(angles + angles[:1], [0 if np.isnan(v) else v for v in values + values[:1]], alpha=0.05)
        ax.set_xticks(angles)
        ax.set_xticklabels([c.capitalize() for c in categories])
        ax.set_ylim(0, 10)
        fig.suptitle("MT-Bench score per category (single-answer grading, 1-10)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2, fontsize=8, frameon=False)
    save_figure(fig, path)
    return {"categories": categories, "series": {label: scores for label, scores in series}}


def plot_lc_win_rate(table: pd.DataFrame, path: str | Path) -> dict[str, Any]:
    """Bars of LC win rate (%) with standard errors, one panel per reference, best first."""
    rows = table[pd.to_numeric(table["lc_win_rate"], errors="coerce").notna()]
    references = list(dict.fromkeys(rows["reference"]))
    fig, axes = new_figure((6.0 * max(1, len(references)), 4.5), ncols=max(1, len(references)))
    axes = np.atleast_1d(axes)
    drawn: dict[str, list[tuple[str, float]]] = {}
    if not references:
        no_data(axes[0], "No AlpacaEval results to draw", f"{len(table)} rows, none with an LC win rate")
    for ax, reference in zip(axes, references):
        part = rows[rows["reference"] == reference].copy()
        part["lc_win_rate"] = part["lc_win_rate"].astype(float)
        part = part.sort_values("lc_win_rate", ascending=False)
        errors = pd.to_numeric(part.get("lc_standard_error"), errors="coerce").fillna(0.0).to_numpy()
        colors = ["tab:green" if i == 0 else "tab:blue" for i in range(len(part))]
        ax.bar(range(len(part)), part["lc_win_rate"], yerr=errors, color=colors, capsize=3)
        ax.set_xticks(range(len(part)))
        ax.set_xticklabels(part["objective"], rotation=45, ha="right")
        ax.set_ylabel("LC win rate (%)")
        ax.set_title(f"AlpacaEval 2.0 vs {reference}")
        ax.set_ylim(0.0, min(100.0, 1.15 * float((part["lc_win_rate"] + errors).max()) + 1.0))
        for x, value in enumerate(part["lc_win_rate"]):
            ax.annotate(f"{value:.1f}", (x, value), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
        drawn[reference] = list(zip(part["objective"], part["lc_win_rate"]))
    save_figure(fig, path)
    return {"references": references, "bars": drawn}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefdisco.judging.figures", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    radar = commands.add_parser("radar", help="MT-Bench category radar (Fig. 4)")
    radar.add_argument("--archive", type=Path, required=True)
    radar.add_argument("--reference-eval", type=Path, default=None)
    radar.add_argument("--top", type=int, default=3)
    radar.add_argument("--output", type=Path, required=True)
    bars = commands.add_parser("lc-win-rate", help="AlpacaEval LC win rate bars (Fig. 1, right)")
    bars.add_argument("--table", type=Path, required=True, help="Table 2 CSV")
    bars.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.command == "radar":
        reference = read_reference_metrics(args.reference_eval) if args.reference_eval else None
        drawn = plot_mt_bench_radar(read_jsonl(args.archive), reference, args.output, args.top)
    else:
        drawn = plot_lc_win_rate(pd.read_csv(args.table), args.output)
    log.info("drew %s", drawn)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
