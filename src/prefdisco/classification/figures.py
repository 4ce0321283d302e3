"""The paper's Fig. 2 for classification objectives, from result files only.

    python -m prefdisco.classification.figures --archive archive.jsonl --transfer transfer.csv \\
        --left fig2_left.png --right fig2_right.png

Left: validation accuracy of every discovery trial in archive order, as the final archive estimates it (mean and 95%
interval over its training seeds x the validation examples; a record without intervals: its one-seed accuracy with
the Wilson interval over the validation images), the best so far by the search's rule (the highest lower bound,
drawn at its mean, its interval shaded), the seed library as reference lines with their intervals, and each
proposal marked as exploration (a new idea) or tuning (a change of constants) where its thought says so. Right: accuracy of the transferred
objectives per model, mean over seeds with 95% t-intervals.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import textwrap
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from prefdisco.cli import setup_logging  # noqa: E402
from prefdisco.io import read_jsonl  # noqa: E402
from prefdisco.plotting import save_figure  # noqa: E402

log = logging.getLogger(__name__)

# Words a proposer uses when it keeps the idea and changes numbers: the evolutionary proposer's constant mutation
# ("Mutated the constant ..."), and an LLM's "tune", "adjust", "increase the temperature" and the like.
TUNING = re.compile(r"\b(mutated the constant|tun(e|ed|ing)|adjust\w*|tweak\w*|increas\w*|decreas\w*|lower\w*|"
                    r"rais\w*|smaller|larger|hyper-?parameter)\b", re.IGNORECASE)


def step_kind(record: dict) -> str:
    """'tuning' when the proposal's thought says it changes constants of an earlier idea, else 'exploration'."""
    return "tuning" if TUNING.search(record.get("thought") or "") else "exploration"


def estimate(record: dict) -> tuple[float, float, float, bool]:
    """(value, low, high, over seeds x examples) of a record's fitness: the mean and 95% interval over its training
    seeds x validation examples where the archive has them, else its one-seed accuracy with the Wilson interval over
    the validation images."""
    fitness = (record.get("intervals") or {}).get("fitness")
    if fitness and math.isfinite(fitness["low"]):
        return float(fitness["mean"]), float(fitness["low"]), float(fitness["high"]), True
    metrics, value = record.get("metrics") or {}, float(record["fitness"])
    return value, metrics.get("val_ci_low", value), metrics.get("val_ci_high", value), False


def ranking_score(record: dict) -> float:
    """The search's rule for "best": the lower 95% bound of fitness (prefdisco.intervals.lower_bound)."""
    return estimate(record)[1]


def plot_left(records: list[dict], path: Path) -> dict:
    seeds = [r for r in records if r.get("generation") == 0]
    trials = [r for r in records if r.get("generation", 0) > 0]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    running, best_records, xs, over_seeds = None, [], [], []
    colours = {"exploration": "tab:blue", "tuning": "tab:orange"}
    shown = set()
    for index, record in enumerate(trials, start=1):
        if record.get("status") == "ok" and record.get("fitness") is not None:
            value, low, high, over = estimate(record)
            over_seeds.append(over)
            kind = step_kind(record)
            ax.errorbar(index, value, yerr=[[value - low], [high - value]], fmt="o", color=colours[kind],
                        capsize=2, label=kind if kind not in shown else None)
            shown.add(kind)
            # best so far follows the search's interval-aware rule: the highest lower bound, drawn at its mean
            if running is None or ranking_score(record) > ranking_score(running):
                running = record
        else:
            # at the foot of the axes (x in data, y in axes units): the accuracy axis is zoomed to the evaluated
            bottom = ax.get_xaxis_transform()
            ax.plot(index, 0.02, "x", color="tab:red", transform=bottom,
                    label="no fitness (invalid, duplicate, failed)" if "failed" not in shown else None)
            ax.annotate(record.get("status") or "?", (index, 0.04), xycoords=bottom, fontsize=6, rotation=90,
                        va="bottom", ha="center")
            shown.add("failed")
        xs.append(index)
        best_records.append(running)
    if xs:
        best = [estimate(r) if r is not None else (math.nan,) * 4 for r in best_records]
        best.append(best[-1])  # one more half step, so a change at the last trial shows
        steps = [*xs, xs[-1] + 0.5]
        ax.step(steps, [b[0] for b in best], where="post", color="black", label="best so far (highest lower bound)")
        ax.fill_between(steps, [b[1] for b in best], [b[2] for b in best], step="post", color="black", alpha=0.08)
    for record in seeds:
        if record.get("status") == "ok" and record.get("fitness") is not None:
            value, low, high, over = estimate(record)
            over_seeds.append(over)
            ax.axhline(value, linestyle=":", linewidth=1, color="grey")
            ax.axhspan(low, high, color="grey", alpha=0.06)
            ax.annotate(record.get("library_name") or record.get("name"), (0.5, value), fontsize=7, color="grey",
                        va="bottom")
    ax.set_xlabel("discovery trial (archive order, seeds excluded)")
    ax.set_ylabel("validation accuracy (fitness)")
    over = ("95% over training seeds x validation examples" if over_seeds and all(over_seeds)
            else "95% Wilson over validation images, one seed")
    ax.set_title(f"LLM-driven discovery of classification objectives (error bars: {over})", fontsize=9)
    ok = [estimate(r) for r in records if r.get("status") == "ok" and r.get("fitness") is not None]
    if ok:
        ax.set_ylim(max(0.0, min(e[1] for e in ok) - 0.03), min(1.0, max(e[2] for e in ok) + 0.03))
    ax.set_xlim(0, max(xs, default=1) + 1)
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)
    plt.close(fig)
    return {"trials": len(trials), "best": estimate(running)[0] if running is not None else None,
            "best_id": running["id"] if running is not None else None,
            "best_so_far_ids": [r["id"] if r is not None else None for r in best_records],
            "intervals": over}


def read_transfer(path: Path) -> list[dict]:
    with Path(path).open() as handle:
        return list(csv.DictReader(handle))


def plot_right(rows: list[dict], path: Path, split: str = "test") -> dict:
    models = list(dict.fromkeys(r["model"] for r in rows))
    objectives = list(dict.fromkeys(r["objective"] for r in rows))
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(3.6 * max(1, len(models)), 4.0), squeeze=False)
    for ax, model in zip(axes[0], models):
        subset = {r["objective"]: r for r in rows if r["model"] == model}
        for i, key in enumerate(objectives):
            row = subset.get(key)
            if row is None or row[f"{split}_mean"] in ("", "nan"):
                continue
            mean, low, high = (float(row[f"{split}_{k}"]) for k in ("mean", "ci_low", "ci_high"))
            err = [[mean - low], [high - mean]] if math.isfinite(low) else None
            colour = "grey" if row["source"] == "library" else f"C{i}"
            ax.bar(i, mean, yerr=err, capsize=3, color=colour)
            ax.annotate(f"{mean:.3f}\nn={row['seeds']}", (i, mean), ha="center", va="bottom", fontsize=6)
        labels = [next((r["name"] for r in rows if r["objective"] == k), k) for k in objectives]
        ax.set_xticks(range(len(objectives)), labels, rotation=35, ha="right", fontsize=7)
        means = [float(r[f"{split}_mean"]) for r in rows if r[f"{split}_mean"] not in ("", "nan")]
        if means:
            ax.set_ylim(max(0.0, min(means) - 0.05), min(1.0, max(means) + 0.03))
        ax.set_title(model, fontsize=9)
    axes[0][0].set_ylabel(f"{split} accuracy (mean over seeds, 95% t-interval)")
    # One panel is narrow: the title wraps to its width rather than running off the figure.
    title = "Transfer of the best discovered objectives (grey: library baselines)"
    fig.suptitle(textwrap.fill(title, max(30, 45 * len(models))), fontsize=9)
    save_figure(fig, path)
    plt.close(fig)
    return {"models": models, "objectives": objectives}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--transfer", type=Path, required=True)
    parser.add_argument("--left", type=Path, required=True)
    parser.add_argument("--right", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    log.info("Fig. 2 left: %s", plot_left(read_jsonl(args.archive), args.left))
    log.info("Fig. 2 right: %s", plot_right(read_transfer(args.transfer), args.right))


if __name__ == "__main__":
    main()
