"""The paper's held-out figures and tables, drawn from result files only (DiscoPOP, Lu et al. 2024).

Every function writes its figure (PNG) or table and, beside it, the data it drew (``<stem>.csv``), so that tests and
readers check numbers rather than pixels; every caption names the run, its settings and its seeds. The paper's own
numbers (:mod:`prefdisco.paper_numbers`) are a separate, labelled series or column, never pooled with ours.

* :func:`frontiers` -- reward against KL, one frontier per objective over beta, 95% intervals at every beta
  (Figs. 5 and 8); :func:`frontier_panels` -- one panel per objective (appendix).
* :func:`objective_shapes` -- loss and gradient against the log-ratio difference at one beta (Fig. 6);
  :func:`beta_grid` -- DPO's and LRML's loss and gradient over a grid of betas.
* :func:`training_curves` -- training and evaluation loss and reward accuracy per logged step (Fig. 7).
* :func:`log_ratio_histogram` -- beta-scaled log-ratio differences under a trained LRML policy with the LRML loss
  and its two local extrema (Fig. 14).
* :func:`table1` (MT-Bench per objective with its standard error) and :func:`tldr_table` (TL;DR win rates).
"""

from __future__ import annotations

import argparse
import logging
import math
import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..cli import setup_logging
from ..io import read_json, write_text
from ..objectives import DISPLAY_NAMES, library_source
from ..paper_numbers import PAPER_LABEL, paper_imdb_summary, paper_table
from ..plotting import save_figure

log = logging.getLogger(__name__)

INTERVAL_COLUMNS = ("reward_ci_low", "reward_ci_high", "kl_ci_low", "kl_ci_high")


def _label(objective: str) -> str:
    return DISPLAY_NAMES.get(objective, objective)


def read_experiments(path: Path, experiment: str | None = None) -> pd.DataFrame:
    """experiments.csv (one row per experiment, objective, beta); intervals are NaN where the file has none."""
    table = pd.read_csv(path)
    missing = [c for c in ("experiment", "objective", "beta", "reward_mean", "kl_mean") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: experiments table lacks columns {missing}")
    for column in (*INTERVAL_COLUMNS, "seeds", "n_prompts", "interval_method"):
        if column not in table.columns:
            log.warning("%s has no %s column: drawn without it", path, column)
            table[column] = math.nan
    return table if experiment is None else table[table["experiment"] == experiment]


def _draw_frontier(ax: Any, rows: pd.DataFrame, label: str, **style: Any) -> None:
    rows = rows.sort_values("kl_mean")
    xerr = np.abs(np.vstack([rows["kl_mean"] - rows["kl_ci_low"], rows["kl_ci_high"] - rows["kl_mean"]]))
    yerr = np.abs(np.vstack([rows["reward_mean"] - rows["reward_ci_low"], rows["reward_ci_high"] - rows["reward_mean"]]))
    ax.errorbar(rows["kl_mean"], rows["reward_mean"], xerr=np.nan_to_num(xerr), yerr=np.nan_to_num(yerr), marker="o",
                markersize=3, capsize=2, label=label, **style)


def frontiers(table: pd.DataFrame, objectives: Sequence[str], path: Path, caption: str,
              paper: bool = True) -> pd.DataFrame:
    """Reward against KL per objective (ours left; the paper's IMDb numbers, a separate panel, right)."""
    ours = table[table["objective"].isin(objectives)].assign(source="ours")
    data = [ours]
    fig = Figure(figsize=(11 if paper else 6, 4.5))
    ax = fig.add_subplot(1, 2 if paper else 1, 1)
    for objective in objectives:
        rows = ours[ours["objective"] == objective]
        if len(rows):
            _draw_frontier(ax, rows, _label(objective))
    ax.set(xlabel="KL(policy || reference)", ylabel="reward", title="ours")
    ax.legend(fontsize=7)
    if paper:
        theirs = paper_imdb_summary()
        theirs = theirs[theirs["objective"].isin(objectives)].assign(source=PAPER_LABEL)
        axp = fig.add_subplot(1, 2, 2)
        for objective in objectives:
            rows = theirs[theirs["objective"] == objective]
            if len(rows):
                _draw_frontier(axp, rows, _label(objective), linestyle="--")
        axp.set(xlabel="token-level KL", ylabel="P(positive)", title=f"{PAPER_LABEL}, IMDb")
        axp.legend(fontsize=7)
        data.append(theirs)
    fig.suptitle(textwrap.fill(caption, 180), fontsize=7)  # a caption wider than the figure is cut off
    save_figure(fig, path)
    frame = pd.concat(data, ignore_index=True)
    frame.to_csv(path.with_suffix(".csv"), index=False)
    return frame


def frontier_panels(table: pd.DataFrame, path: Path, caption: str) -> pd.DataFrame:
    """One panel per objective, DPO in grey in every panel for comparison (the appendix figures)."""
    objectives = sorted(table["objective"].unique())
    cols = min(4, len(objectives))
    rows_n = math.ceil(len(objectives) / cols)
    fig = Figure(figsize=(3.2 * cols, 2.8 * rows_n))
    dpo = table[table["objective"] == "dpo"]
    for i, objective in enumerate(objectives):
        ax = fig.add_subplot(rows_n, cols, i + 1)
        if objective != "dpo" and len(dpo):
            _draw_frontier(ax, dpo, "DPO", color="tab:gray", alpha=0.6)
        _draw_frontier(ax, table[table["objective"] == objective], _label(objective))
        ax.set_title(_label(objective), fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle(textwrap.fill(caption, 180), fontsize=7)  # a caption wider than the figure is cut off
    save_figure(fig, path)
    table.assign(source="ours").to_csv(path.with_suffix(".csv"), index=False)
    return table


def loss_and_gradient(objective: str, beta: float, rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair loss of a library objective, and its derivative, against the log-ratio difference rho (reference
    log-probs 0, rejected policy log-prob 0, chosen = rho). The library's code goes through the constrained loader.
    torch is imported here: of this module's figures only the shapes need it, and it costs seconds to import."""
    import torch

    from ..sandbox.loader import ObjectiveContext, load_objective

    fn = load_objective(library_source(objective))
    chosen = torch.tensor(rho, dtype=torch.float64, requires_grad=True)
    zeros = torch.zeros_like(chosen)
    losses = fn(ObjectiveContext(beta), chosen, zeros, zeros, zeros)
    (gradient,) = torch.autograd.grad(losses.sum(), chosen)
    return losses.detach().numpy(), gradient.numpy()


def objective_shapes(objectives: Sequence[str], beta: float, path: Path, rho_range: float = 60.0) -> pd.DataFrame:
    rho = np.linspace(-rho_range, rho_range, 481)
    rows = []
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_grad = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for objective in objectives:
        loss, grad = loss_and_gradient(objective, beta, rho)
        ax_loss.plot(rho, loss, label=_label(objective))
        ax_grad.plot(rho, grad, label=_label(objective))
        rows += [{"objective": objective, "beta": beta, "rho": r, "loss": value, "gradient": g} for r, value, g in zip(rho, loss, grad)]
    ax_loss.set(xlabel="log-ratio difference rho", ylabel="loss", title=f"loss, beta = {beta:g}")
    ax_grad.set(xlabel="log-ratio difference rho", ylabel="d loss / d rho", title="gradient")
    ax_loss.legend(fontsize=7)
    save_figure(fig, path)
    frame = pd.DataFrame(rows)
    frame.to_csv(path.with_suffix(".csv"), index=False)
    return frame


def beta_grid(objectives: Sequence[str], betas: Sequence[float], path: Path, rho_range: float = 60.0) -> pd.DataFrame:
    rho = np.linspace(-rho_range, rho_range, 481)
    fig = Figure(figsize=(4 * len(objectives), 7))
    rows = []
    for column, objective in enumerate(objectives):
        ax_loss = fig.add_subplot(2, len(objectives), column + 1)
        ax_grad = fig.add_subplot(2, len(objectives), len(objectives) + column + 1)
        for beta in betas:
            loss, grad = loss_and_gradient(objective, beta, rho)
            ax_loss.plot(rho, loss, label=f"beta={beta:g}")
            ax_grad.plot(rho, grad, label=f"beta={beta:g}")
            rows += [{"objective": objective, "beta": beta, "rho": r, "loss": value, "gradient": g}
                     for r, value, g in zip(rho, loss, grad)]
        ax_loss.set(title=f"{_label(objective)} loss", xlabel="rho")
        ax_grad.set(title=f"{_label(objective)} gradient", xlabel="rho")
        ax_loss.legend(fontsize=6)
    save_figure(fig, path)
    frame = pd.DataFrame(rows)
    frame.to_csv(path.with_suffix(".csv"), index=False)
    return frame


CURVES = (("loss", "training loss"), ("eval_loss", "evaluation loss"),
          ("rewards/accuracies", "training reward accuracy"), ("eval_rewards/accuracies", "evaluation reward accuracy"))


def training_curves(records: Sequence[dict], path: Path, caption: str) -> pd.DataFrame:
    """Per logged step of every unit's train.json history; one line per objective, the mean over its seeds."""
    rows = []
    for record in records:
        objective = record["id"].split("/")[1]
        for entry in record.get("history", []):
            for key, _ in CURVES:
                if entry.get(key) is not None and "step" in entry:
                    rows.append({"unit": record["id"], "objective": objective, "metric": key, "step": entry["step"],
                                 "value": entry[key]})
    frame = pd.DataFrame(rows, columns=["unit", "objective", "metric", "step", "value"])
    fig = Figure(figsize=(10, 7))
    for i, (key, title) in enumerate(CURVES):
        ax = fig.add_subplot(2, 2, i + 1)
        for objective, group in frame[frame["metric"] == key].groupby("objective"):
            mean = group.groupby("step")["value"].mean()
            ax.plot(mean.index, mean.values, marker=".", label=_label(objective))
        ax.set(title=title, xlabel="step")
        if i == 0:
            ax.legend(fontsize=7)
    fig.suptitle(textwrap.fill(caption, 180), fontsize=7)  # a caption wider than the figure is cut off
    save_figure(fig, path)
    frame.to_csv(path.with_suffix(".csv"), index=False)
    return frame


def lrml_extrema(low: float = -5.0, high: float = 5.0) -> tuple[float, float]:
    """The two local extrema of LRML's loss as a function of the beta-scaled log-ratio difference (beta = 1)."""
    x = np.linspace(low, high, 20001)
    loss, grad = loss_and_gradient("lrml", 1.0, x)
    turns = np.where(np.sign(grad[:-1]) != np.sign(grad[1:]))[0]
    if len(turns) < 2:
        raise ValueError("LRML's loss has fewer than two local extrema on the searched range")
    return float(x[turns[0]]), float(x[turns[1]])


def log_ratio_histogram(logratios: dict, path: Path, caption: str) -> dict:
    values = np.asarray(logratios["values"], dtype=float)
    low, high = sorted(lrml_extrema())
    share = float(((values > low) & (values < high)).mean()) if len(values) else math.nan
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(values, bins=40, color="tab:blue", alpha=0.7)
    ax.set(xlabel="beta-scaled log-ratio difference", ylabel="training pairs")
    span = max(abs(values).max() if len(values) else 1.0, abs(low) * 2, abs(high) * 2)
    x = np.linspace(-span, span, 801)
    loss, _ = loss_and_gradient("lrml", 1.0, x)
    twin = ax.twinx()
    twin.plot(x, loss, color="tab:red", label="LRML loss")
    twin.set_ylabel("LRML loss")
    for extremum in (low, high):
        ax.axvline(extremum, color="black", linestyle=":")
    ax.set_title(f"{share:.1%} of {len(values)} pairs between the extrema ({low:.2f}, {high:.2f})", fontsize=9)
    fig.suptitle(textwrap.fill(caption, 180), fontsize=7)  # a caption wider than the figure is cut off
    save_figure(fig, path)
    summary = {"unit": logratios["unit"], "beta": logratios["beta"], "n_pairs": int(len(values)),
               "extrema": [low, high], "share_between_extrema": share,
               "histogram": dict(zip(("counts", "edges"), (h.tolist() for h in np.histogram(values, bins=40))))}
    write_text(path.with_suffix(".json"), pd.Series(summary).to_json(indent=1))
    return summary


def table1(evaluations: Sequence[dict], path: Path, caption: str) -> pd.DataFrame:
    """MT-Bench per objective with its standard error over questions (ours), beside the paper's reported score."""
    rows = []
    for record in evaluations:
        objective = record["id"].split("/")[1]
        metrics = record.get("metrics", {})
        rows.append({"objective": objective, "unit": record["id"], "status": record["status"],
                     "mt_bench": metrics.get("reward"), "mt_bench_se": metrics.get("reward_sem")})
    ours = pd.DataFrame(rows, columns=["objective", "unit", "status", "mt_bench", "mt_bench_se"])
    reported = paper_table("mt_bench")
    reported = reported[reported["model"] == "zephyr-7b-gemma"].set_index("objective")["mt_bench_score"]
    ours[f"mt_bench {PAPER_LABEL}"] = ours["objective"].map(reported)
    ours.to_csv(path, index=False)
    lines = [f"Table 1. {caption}", "", f"| objective | MT-Bench (ours) | {PAPER_LABEL} |", "| --- | --- | --- |"]
    for _, r in ours.iterrows():
        ours_cell = f"{r['mt_bench']:.3f} ± {r['mt_bench_se']:.3f}" if pd.notna(r["mt_bench"]) else r["status"]
        theirs = f"{r[f'mt_bench {PAPER_LABEL}']:.3f}" if pd.notna(r[f"mt_bench {PAPER_LABEL}"]) else "-"
        lines.append(f"| {_label(r['objective'])} | {ours_cell} | {theirs} |")
    write_text(path.with_suffix(".md"), "\n".join(lines) + "\n")
    return ours


def tldr_table(metrics: Sequence[dict], path: Path, caption: str) -> pd.DataFrame:
    """Win rate (%) with its standard error against the human summary and the SFT model, beside the paper's."""
    rows = []
    for record in metrics:
        objective = record["model_id"].split("-")[2] if record["model_id"].startswith("experiments-") else record["model_id"]
        rows.append({"objective": objective, "reference": record["reference"], "win_rate": record.get("win_rate"),
                     "standard_error": record.get("standard_error"), "n_total": record.get("n_total")})
    ours = pd.DataFrame(rows, columns=["objective", "reference", "win_rate", "standard_error", "n_total"])
    theirs = paper_table("tldr").set_index(["objective", "reference"])
    ours[f"win_rate {PAPER_LABEL}"] = [theirs["win_rate"].get((o, r)) for o, r in zip(ours["objective"], ours["reference"])]
    ours.to_csv(path, index=False)
    lines = [f"TL;DR. {caption}", "", f"| objective | vs | win rate (ours) | {PAPER_LABEL} |", "| --- | --- | --- | --- |"]
    for _, r in ours.iterrows():
        cell = f"{r['win_rate']:.1f} ± {r['standard_error']:.1f}" if pd.notna(r["win_rate"]) else "-"
        lines.append(f"| {_label(r['objective'])} | {r['reference']} | {cell} | {r[f'win_rate {PAPER_LABEL}']} |")
    write_text(path.with_suffix(".md"), "\n".join(lines) + "\n")
    return ours


def caption_of(run: str, table: pd.DataFrame | None = None, records: Sequence[dict] = (), extra: str = "") -> str:
    """Run, settings and seeds, from the result files themselves."""
    parts = [f"run {run}"]
    if table is not None and len(table):
        parts.append(f"betas {sorted(table['beta'].unique().tolist())}")
        seeds = table["seeds"].dropna().unique()
        parts.append(f"seeds per point {sorted(int(s) for s in seeds)}" if len(seeds) else "seeds: n/a")
        method = table["interval_method"].dropna().unique()
        parts.append(f"95% intervals: {method[0]}" if len(method) else "no intervals in experiments.csv")
    if records:
        options = records[0].get("options", {})
        parts.append("lr {learning_rate}, batch {batch_size}x{gradient_accumulation_steps}, epochs {epochs}, "
                     "max_steps {max_steps}".format(**{k: options.get(k) for k in
                                                       ("learning_rate", "batch_size", "gradient_accumulation_steps",
                                                        "epochs", "max_steps")}))
        parts.append(f"seeds {sorted({r['options'].get('seed') for r in records if 'options' in r})}")
    if extra:
        parts.append(extra)
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="figure", required=True)
    for name in ("frontier", "panels"):
        p = sub.add_parser(name)
        p.add_argument("--experiments", type=Path, required=True)
        p.add_argument("--experiment", default=None)
        p.add_argument("--objectives", nargs="*", default=None)
        p.add_argument("--no-paper", action="store_true")
    p = sub.add_parser("shapes")
    p.add_argument("--objectives", nargs="+", required=True)
    p.add_argument("--beta", type=float, required=True)
    p = sub.add_parser("beta-grid")
    p.add_argument("--objectives", nargs="+", required=True)
    p.add_argument("--betas", type=float, nargs="+", required=True)
    p = sub.add_parser("curves")
    p.add_argument("--train-records", type=Path, nargs="+", required=True)
    p = sub.add_parser("histogram")
    p.add_argument("--logratios", type=Path, required=True)
    p = sub.add_parser("table1")
    p.add_argument("--evaluations", type=Path, nargs="+", required=True)
    p = sub.add_parser("tldr-table")
    p.add_argument("--metrics", type=Path, nargs="+", required=True)
    for p in sub.choices.values():
        p.add_argument("--run", default="")
        p.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    if args.figure in ("frontier", "panels"):
        table = read_experiments(args.experiments, args.experiment)
        caption = caption_of(args.run, table)
        if args.figure == "frontier":
            objectives = args.objectives or sorted(table["objective"].unique())
            frontiers(table, objectives, args.output, caption, paper=not args.no_paper)
        else:
            frontier_panels(table, args.output, caption)
    elif args.figure == "shapes":
        objective_shapes(args.objectives, args.beta, args.output)
    elif args.figure == "beta-grid":
        beta_grid(args.objectives, args.betas, args.output)
    elif args.figure == "curves":
        records = [read_json(p) for p in args.train_records]
        training_curves(records, args.output, caption_of(args.run, records=records))
    elif args.figure == "histogram":
        logratios = read_json(args.logratios)
        log_ratio_histogram(logratios, args.output, caption_of(args.run, extra=f"unit {logratios['unit']}"))
    elif args.figure == "table1":
        evaluations = [read_json(p) for p in args.evaluations]
        table1(evaluations, args.output, caption_of(args.run, extra=f"{len(evaluations)} units, SE over questions"))
    elif args.figure == "tldr-table":
        metrics = [read_json(p) for p in args.metrics]
        tldr_table(metrics, args.output, caption_of(args.run, extra="win rate % ± SE over posts"))


if __name__ == "__main__":
    main()
