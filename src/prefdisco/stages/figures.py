"""Figures of a discovery run, drawn from the archive records.

Each ``plot_*`` function takes records already in memory, writes one PNG and returns a small dict of what it
drew (series, point counts, best-so-far values), so that tests can check the data rather than the pixels.

* ``plot_fitness_over_generations`` -- fitness of every candidate per generation with the best-so-far line
  (the paper's Fig. 3).
* ``plot_objective_shapes`` -- loss and gradient against beta*rho for the best objectives and DPO (Fig. 6).
* ``plot_reward_vs_kl`` -- reward against KL(policy || reference) of every evaluated candidate.

CLI::

    python -m prefdisco.stages.figures --archive A.jsonl --reference-eval R.json \\
        --fitness-figure F.png --shapes-figure S.png --reward-kl-figure K.png [--top 3]
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from prefdisco.intervals import interval, ranking_score
from prefdisco.io import read_jsonl
from prefdisco.objectives import DISPLAY_NAMES, objective_label
from prefdisco.plotting import new_figure, no_data, save_figure
from prefdisco.records import DUPLICATE, OK, Record, finite, is_evaluated, metric, read_reference_metrics

log = logging.getLogger(__name__)

_SEED_COLOR = "tab:gray"
_CANDIDATE_COLOR = "tab:blue"
_BEST_COLOR = "tab:green"
_FAILED_COLOR = "tab:red"
_DUPLICATE_COLOR = "tab:orange"
# Above this ratio between the largest and the smallest series magnitude a linear axis flattens the tame
# curves to a line (IPO's squared loss and exponential losses reach 1e4 where DPO stays below 10).
_SYMLOG_RATIO = 100.0


# --- fitness over generations (Fig. 3) ---------------------------------------------------------------------------


def plot_fitness_over_generations(records: Sequence[Record], path: str | Path) -> dict[str, Any]:
    """Every evaluated candidate's fitness per generation, with the best-so-far fitness as a step line.

    Seed baselines (generation 0) are grey squares labelled with their display names. Candidates without a
    fitness are drawn as small markers in a band below the lowest fitness -- red x for invalid / train_failed /
    eval_failed, orange circles for duplicates -- and counted in the legend.

    Returns ``generations`` (sorted, every generation in the archive), ``best_so_far`` (one value per generation,
    None before the first evaluated one), ``points`` ({id: (x, fitness)} of the plotted dots), ``n_points``,
    ``n_failed``, ``n_duplicates`` and ``baseline_labels``.
    """
    evaluated = [r for r in records if is_evaluated(r)]
    failed = [r for r in records if not is_evaluated(r) and r.get("status") != DUPLICATE]
    duplicates = [r for r in records if r.get("status") == DUPLICATE]
    generations = sorted({int(g) for r in records if (g := finite(r.get("generation"))) is not None})

    # "Best so far" follows the interval rule of the search: the record with the highest lower bound of fitness
    # (ranking_score), drawn at its mean with its interval as a band; archives without intervals: the highest fitness.
    best_so_far: list[float | None] = []
    best_ids: list[str | None] = []
    best_bands: list[tuple[float, float] | None] = []
    running: Record | None = None
    for generation in generations:
        for record in (r for r in evaluated if r.get("generation") == generation):
            if running is None or ranking_score(record) > ranking_score(running):
                running = record
        best_so_far.append(None if running is None else float(running["fitness"]))
        best_ids.append(None if running is None else running["id"])
        band = interval(running, "fitness") if running is not None else {}
        best_bands.append((float(band["low"]), float(band["high"])) if finite(band.get("low")) is not None else None)

    info: dict[str, Any] = {
        "generations": generations,
        "best_so_far": best_so_far,
        "best_so_far_ids": best_ids,
        "intervals": {},
        "points": {},
        "n_points": len(evaluated),
        "n_failed": len(failed),
        "n_duplicates": len(duplicates),
        "baseline_labels": [],
    }
    fig, ax = new_figure(figsize=(8, 5))
    if not evaluated:
        no_data(ax, "no evaluated candidates",
                f"{len(records)} records: {len(failed)} failed or invalid, {len(duplicates)} duplicate")
        ax.set_title("Fitness over generations")
        save_figure(fig, path)
        return info

    positions = _jittered_positions(records)
    seeds = [r for r in evaluated if r.get("generation") == 0]
    discovered = [r for r in evaluated if r.get("generation") != 0]
    for group, color, marker, label in (
        (seeds, _SEED_COLOR, "s", "seed baseline"),
        (discovered, _CANDIDATE_COLOR, "o", "candidate"),
    ):
        if not group:
            continue
        xs = [positions[r["id"]] for r in group]
        ys = [float(r["fitness"]) for r in group]
        ax.scatter(xs, ys, s=36, color=color, marker=marker, alpha=0.85, edgecolor="white", linewidth=0.5,
                   label=f"{label} ({len(group)})", zorder=3)
        info["points"].update({r["id"]: (x, y) for r, x, y in zip(group, xs, ys)})
        for record, x in zip(group, xs):  # 95% interval over seeds x prompts
            band = interval(record, "fitness")
            if finite(band.get("low")) is not None and finite(band.get("high")) is not None:
                ax.vlines(x, band["low"], band["high"], color=color, alpha=0.5, linewidth=1.2, zorder=2)
                info["intervals"][record["id"]] = (float(band["low"]), float(band["high"]))

    for record in seeds:
        label = objective_label(record)
        info["baseline_labels"].append(label)
        x, y = info["points"][record["id"]]
        ax.annotate(label, (x, y), xytext=(6, 0), textcoords="offset points", fontsize=8, va="center",
                    color="dimgray", zorder=4, bbox=dict(boxstyle="square,pad=0.1", facecolor="white",
                                                         edgecolor="none", alpha=0.8))

    # Each generation's best-so-far level spans its whole column (g - 0.5 .. g + 0.5), so the line steps up
    # between generations rather than through the middle of a generation's dots.
    steps = [(g, b) for g, b in zip(generations, best_so_far) if b is not None]
    step_x = [g - 0.5 for g, _ in steps] + [generations[-1] + 0.5]
    step_y = [b for _, b in steps] + [steps[-1][1]]
    ruled = any(b is not None for b in best_bands)
    ax.step(step_x, step_y, where="post", color=_BEST_COLOR, linewidth=1.8, alpha=0.9,
            label="best so far (highest lower bound; band: its 95% interval)" if ruled else "best so far", zorder=2)
    bands = [(g, b) for g, b in zip(generations, best_bands) if b is not None]
    for g, (band_low, band_high) in bands:
        ax.fill_between([g - 0.5, g + 0.5], band_low, band_high, color=_BEST_COLOR, alpha=0.12, linewidth=0, zorder=1)

    fitness_values = [float(r["fitness"]) for r in evaluated]
    low, high = min(fitness_values), max(fitness_values)
    span = (high - low) or max(abs(high), 1.0) * 0.1
    bottom = low - 0.12 * span
    for group, color, marker, label in (
        (failed, _FAILED_COLOR, "x", "invalid / failed, no fitness"),
        (duplicates, _DUPLICATE_COLOR, "o", "duplicate, not retrained"),
    ):
        if not group:
            continue
        xs = [positions[r["id"]] for r in group if r.get("id") in positions]
        ax.scatter(xs, [bottom] * len(xs), s=22, marker=marker, color=color,
                   facecolor="none" if marker == "o" else None, linewidth=1.2,
                   label=f"{label} ({len(group)})", zorder=3)
    if failed or duplicates:
        ax.axhline(bottom + 0.06 * span, color="lightgray", linewidth=0.8, linestyle=":", zorder=1)
    ax.set_ylim(bottom - 0.08 * span, high + 0.1 * span)

    ax.set_xlim(generations[0] - 0.6, generations[-1] + 0.6)
    if len(generations) <= 25:
        ax.set_xticks(generations)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness")
    ax.set_title(
        f"Fitness over generations: {len(evaluated)} evaluated, {len(failed)} failed/invalid, "
        f"{len(duplicates)} duplicate"
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    save_figure(fig, path)
    return info


def _jittered_positions(records: Sequence[Record]) -> dict[str, float]:
    """x position per record id: its generation plus an even, deterministic spread within the generation.

    Even spacing (rather than random jitter) keeps the figure identical between runs and never stacks dots.
    """
    by_generation: dict[int, list[Record]] = {}
    for record in records:
        generation = finite(record.get("generation"))
        if generation is not None and record.get("id") is not None:
            by_generation.setdefault(int(generation), []).append(record)
    positions: dict[str, float] = {}
    for generation, group in by_generation.items():
        group.sort(key=lambda r: finite(r.get("candidate")) or 0.0)
        offsets = np.linspace(-0.25, 0.25, len(group)) if len(group) > 1 else [0.0]
        positions.update({r["id"]: generation + float(o) for r, o in zip(group, offsets)})
    return positions


# --- objective shapes (Fig. 6) ------------------------------------------------------------------------------------


def plot_objective_shapes(
    records: Sequence[Record], path: str | Path, top: int = 3, baseline: str = "dpo"
) -> dict[str, Any]:
    """Loss and d loss / d rho against beta*rho for the ``top`` best objectives and the ``baseline``.

    Candidates qualify when they are evaluated (status ok, finite fitness) and carry a validation curve. The
    baseline is the archive's record with ``library_name == baseline`` (status ok and lowest generation
    preferred); it is left out when absent, and drawn once when it is itself among the top.

    Returns ``ids`` (top ids, best first), ``labels`` (legend labels, in drawing order), ``baseline_id``,
    ``n_points`` (per id), and ``yscale`` per panel.
    """
    with_curve = [r for r in records if is_evaluated(r) and _curve(r) is not None]
    best = sorted(with_curve, key=lambda r: -ranking_score(r))[: max(top, 0)]
    baseline_record = _baseline_record(records, baseline)

    series: list[tuple[Record, str, dict[str, Any]]] = []
    if baseline_record is not None and baseline_record.get("id") not in {r["id"] for r in best}:
        series.append((baseline_record, "baseline", _curve(baseline_record)))
    series += [(r, "top", _curve(r)) for r in best]

    info: dict[str, Any] = {
        "ids": [r["id"] for r in best],
        "labels": [],
        "baseline_id": baseline_record.get("id") if baseline_record is not None else None,
        "n_points": {},
        "yscale": {},
    }
    fig, (loss_ax, grad_ax) = new_figure(figsize=(11, 4.8), ncols=2)
    if not series:
        for ax in (loss_ax, grad_ax):
            no_data(ax, "no evaluated candidates", "with a loss curve")
        fig.suptitle("Objective shapes")
        save_figure(fig, path)
        return info

    colors = iter(["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
                   "tab:cyan", "tab:red"])
    betas = set()
    for record, role, curve in series:
        x = _float_array(curve["beta_rho"])
        label = _shape_label(record, role, baseline)
        info["labels"].append(label)
        info["n_points"][record["id"]] = int(np.isfinite(x).sum())
        betas.add(finite(curve.get("beta")))
        # The baseline is dashed and drawn on top: discovered objectives often coincide with DPO over much of
        # the range, and a solid line underneath would hide it.
        style = dict(color="black", linestyle="--", linewidth=1.4, zorder=4) if role == "baseline" else dict(
            color=next(colors, None), linewidth=2.0, zorder=3)
        loss_ax.plot(x, _float_array(curve["loss"]), label=label, **style)
        grad_ax.plot(x, _float_array(curve["grad"]), label=label, **style)

    beta_text = f" (β = {betas.pop():g})" if len(betas) == 1 and None not in betas else ""
    for ax, key, ylabel in ((loss_ax, "loss", "loss f(βρ)"), (grad_ax, "grad", "gradient d loss / dρ")):
        info["yscale"][key] = _choose_yscale(ax, [_float_array(c[key]) for _, _, c in series])
        ax.axhline(0.0, color="lightgray", linewidth=0.8, zorder=0)
        ax.axvline(0.0, color="lightgray", linewidth=0.8, zorder=0)
        ax.set_xlabel(f"βρ{beta_text}")
        ax.set_ylabel(ylabel + (" (symlog)" if info["yscale"][key] == "symlog" else ""))
        ax.grid(alpha=0.3)
    loss_ax.set_title("Loss")
    grad_ax.set_title("Gradient")
    separate_baseline = any(role == "baseline" for _, role, _ in series)
    fig.suptitle(f"Objective shapes: top {len(best)} by fitness"
                 + (f" and the {DISPLAY_NAMES.get(baseline, baseline)} baseline" if separate_baseline else ""),
                 fontsize=12)
    # One legend under both panels: the curves fill the panels' corners, and the labels are long.
    handles, labels = loss_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 2), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, min(0.06 * math.ceil(len(labels) / 2), 0.35), 1, 1))
    save_figure(fig, path, tight=False)
    return info


def _curve(record: Record) -> dict[str, Any] | None:
    """The record's validation curve when it is usable: beta_rho, loss and grad of one common length >= 2."""
    curve = (record.get("validation") or {}).get("curve")
    if not isinstance(curve, Mapping):
        return None
    columns = [curve.get(key) for key in ("beta_rho", "loss", "grad")]
    if not all(isinstance(c, Sequence) and not isinstance(c, str) for c in columns):
        return None
    if len({len(c) for c in columns}) != 1 or len(columns[0]) < 2:
        return None
    return dict(curve)


def _baseline_record(records: Sequence[Record], library_name: str) -> Record | None:
    candidates = [r for r in records if r.get("library_name") == library_name and _curve(r) is not None]
    if not candidates:
        return None
    return min(candidates, key=lambda r: (r.get("status") != OK, finite(r.get("generation")) or 0.0))


def _shape_label(record: Record, role: str, baseline: str) -> str:
    if role == "baseline":
        return f"{DISPLAY_NAMES.get(baseline, baseline)} (baseline)" if record.get("generation") == 0 else (
            objective_label(record))
    return _fitness_label(record)


def _choose_yscale(ax: Any, arrays: Sequence[np.ndarray]) -> str:
    """Linear unless one curve dwarfs another; then symlog, linear up to the smallest curve's magnitude.

    The threshold is rounded up to a power of ten so that the log ticks start right where the linear part
    ends (an unrounded threshold puts a 10^k tick inside the linear part, on top of the 0 tick).
    """
    peaks = [float(np.nanmax(np.abs(a))) for a in arrays if np.isfinite(a).any()]
    peaks = [p for p in peaks if p > 0]
    if len(peaks) < 2 or max(peaks) / min(peaks) <= _SYMLOG_RATIO:
        return "linear"
    ax.set_yscale("symlog", linthresh=10.0 ** math.ceil(math.log10(min(peaks))))
    return "symlog"


def _float_array(values: Sequence[Any]) -> np.ndarray:
    # None and non-numbers become NaN, which matplotlib draws as a gap.
    return np.array([np.nan if (v := finite(value)) is None else v for value in values], dtype=float)


# --- reward vs KL ---------------------------------------------------------------------------------------------------


def plot_reward_vs_kl(
    records: Sequence[Record], reference: Mapping[str, Any] | None, path: str | Path, annotate: int = 3
) -> dict[str, Any]:
    """Reward against KL(policy || reference), one point per evaluated candidate with its 95% interval over seeds x
    prompts as error bars (the SEM over prompts for archives without intervals).

    Points are coloured by generation (seed baselines as squares, labelled); the untrained reference model is a
    star at (0, its reward); the ``annotate`` best candidates by fitness are labelled.

    Returns ``ids`` (plotted), ``n_points``, ``annotated`` (ids, best first) and ``reference`` ((0, reward) or
    None).
    """
    points = [r for r in records if r.get("status") == OK and metric(r, "reward") is not None
              and metric(r, "kl") is not None]
    reference_reward = finite((reference or {}).get("reward"))
    ranked = sorted((r for r in points if is_evaluated(r)), key=lambda r: -ranking_score(r))
    annotated = ranked[: max(annotate, 0)]
    info: dict[str, Any] = {
        "ids": [r["id"] for r in points],
        "n_points": len(points),
        "annotated": [r["id"] for r in annotated],
        "reference": (0.0, reference_reward) if reference_reward is not None else None,
    }
    fig, ax = new_figure(figsize=(8, 5.5))
    if reference_reward is not None:
        sem = finite(reference.get("reward_sem"))
        ax.errorbar([0.0], [reference_reward], yerr=[sem] if sem is not None else None, fmt="*", markersize=16,
                    color="gold", markeredgecolor="black", ecolor="black", capsize=3, zorder=4,
                    label="reference (untrained)")
    if not points:
        # Keep the axes when the reference star is drawn, and keep the message clear of it.
        no_data(ax, "no evaluated candidates", "only the reference model is shown" if reference_reward else "",
                y=0.85 if reference_reward is not None else 0.55, clear_ticks=reference_reward is None)
        ax.set_xlim(-1.0, 10.0)
        ax.set_xlabel("KL(policy || reference)")
        ax.set_ylabel("mean reward")
        ax.set_title("Reward vs KL")
        if reference_reward is not None:
            ax.legend(loc="lower right", fontsize=8)
        save_figure(fig, path)
        return info

    generations = [finite(r.get("generation")) or 0.0 for r in points]
    first, last = int(min(generations)), int(max(generations))
    # One discrete colour per generation, centred on the integer ticks of the colour bar.
    norm = Normalize(vmin=first - 0.5, vmax=last + 0.5)
    cmap = colormaps["viridis"].resampled(last - first + 1)
    for record, generation in zip(points, generations):
        color = cmap(norm(generation))
        ax.errorbar(_center(record, "kl"), _center(record, "reward"),
                    xerr=_error_bar(record, "kl"), yerr=_error_bar(record, "reward"),
                    fmt="s" if generation == 0 else "o", color=color, ecolor=color, alpha=0.9, markersize=7,
                    markeredgecolor="black", markeredgewidth=0.5, elinewidth=1, capsize=2, zorder=3)
    mappable = ax.scatter([], [], c=[], cmap=cmap, norm=norm)
    colorbar = fig.colorbar(mappable, ax=ax, pad=0.02)
    colorbar.set_label("generation")
    colorbar.locator = MaxNLocator(integer=True)
    colorbar.update_ticks()

    # The best candidates get short "#k" tags at the point and their full names in the legend: the best points
    # crowd together at the top right, where full names would overprint one another.
    key_handles = []
    offsets = [(-30, 12), (14, -18), (14, 12), (-30, -18)]
    for index, record in enumerate(annotated):
        ax.annotate(f"#{index + 1}", (metric(record, "kl"), metric(record, "reward")),
                    xytext=offsets[index % len(offsets)], textcoords="offset points", fontsize=9, fontweight="bold",
                    zorder=5, arrowprops=dict(arrowstyle="-", color="black", linewidth=0.6, shrinkB=4))
        key_handles.append(Line2D([], [], linestyle="none", label=f"#{index + 1} {_fitness_label(record)}"))
    # Seed baselines are labelled by name: they are what the discovered objectives are compared against.
    for record in points:
        if record.get("generation") == 0 and record not in annotated:
            ax.annotate(objective_label(record), (metric(record, "kl"), metric(record, "reward")), xytext=(7, -11),
                        textcoords="offset points", fontsize=8, color="dimgray")

    ax.set_xlim(left=min(0.0, ax.get_xlim()[0]))
    ax.set_xlabel("KL(policy || reference)")
    ax.set_ylabel("mean reward")
    ax.set_title(f"Reward vs KL: {len(points)} evaluated candidates")
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()[0] + key_handles
    if handles:
        ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.9)
    save_figure(fig, path)
    return info


def _center(record: Record, key: str) -> float | None:
    """The mean over every seed where the record has intervals, else its (one-seed) metric."""
    mean = finite(interval(record, key).get("mean"))
    return mean if mean is not None else metric(record, key)


def _error_bar(record: Record, key: str) -> Any:
    """The 95% interval over seeds x prompts as an asymmetric error bar around the record's value; its SEM over
    prompts for archives without intervals."""
    band, value = interval(record, key), _center(record, key)
    if finite(band.get("low")) is not None and finite(band.get("high")) is not None and value is not None:
        return [[max(value - band["low"], 0.0)], [max(band["high"] - value, 0.0)]]
    return metric(record, f"{key}_sem")


def _fitness_label(record: Record) -> str:
    fitness = finite(record.get("fitness"))
    label = objective_label(record)
    return f"{label} (fitness {fitness:.3f})" if fitness is not None else label


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefdisco.stages.figures", description=__doc__.splitlines()[0])
    parser.add_argument("--archive", required=True, type=Path, help="archive JSONL, one record per candidate")
    parser.add_argument("--reference-eval", type=Path, help="evaluation JSON of the untrained reference model")
    parser.add_argument("--fitness-figure", required=True, type=Path)
    parser.add_argument("--shapes-figure", required=True, type=Path)
    parser.add_argument("--reward-kl-figure", required=True, type=Path)
    parser.add_argument("--top", type=int, default=3, help="objectives in the shapes figure (default 3)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    records = read_jsonl(args.archive)
    reference = read_reference_metrics(args.reference_eval) if args.reference_eval else None
    plot_fitness_over_generations(records, args.fitness_figure)
    plot_objective_shapes(records, args.shapes_figure, top=args.top)
    plot_reward_vs_kl(records, reference, args.reward_kl_figure, annotate=args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
