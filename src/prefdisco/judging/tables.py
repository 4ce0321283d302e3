"""Stages: which objectives of the final archive AlpacaEval holds out, and the paper's Table 2 from their results.

Selection: the seed baselines that were trained (for comparison, as in Table 2, whatever their fitness) and the
``top_k`` evaluated candidates by fitness. Table 2: one row per objective and reference (GPT-4 Turbo, or the SFT
model), with win rate, length-controlled win rate, their standard errors, average length, the number of
annotations and what the judge cost; as CSV (the columns of the paper's published numbers) and Markdown.

CLI::

    python -m prefdisco.judging.tables select --archive A.jsonl --top-k 3 [--no-seeds] --output S.json
    python -m prefdisco.judging.tables table2 --selection S.json --metrics M1.json ... --csv T.csv --markdown T.md
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..cli import setup_logging
from ..io import read_json, read_jsonl, write_json, write_text
from ..objectives import objective_label
from ..records import TRAINED, finite, is_evaluated

log = logging.getLogger(__name__)

TABLE2_COLUMNS = ["objective", "id", "reference", "status", "win_rate", "standard_error", "lc_win_rate",
                  "lc_standard_error", "avg_length", "n_total", "judge_calls", "judge_cost_usd", "error"]


def unit_of(record: dict) -> str:
    return f"gen{int(record['generation'])}/cand{int(record['candidate'])}"


def select_held_out(records: Sequence[dict], top_k: int, include_seeds: bool = True) -> list[dict]:
    """The trained seed baselines and the top_k evaluated candidates by fitness, in archive order."""
    ranked = sorted((r for r in records if is_evaluated(r)), key=lambda r: -float(r["fitness"]))
    chosen = {r["id"] for r in ranked[:top_k]}
    if include_seeds:
        chosen |= {r["id"] for r in records if r.get("generation") == 0 and r.get("training")
                   and r.get("status") in TRAINED}
    return [{"id": r["id"], "unit": unit_of(r), "objective": objective_label(r), "library_name": r.get("library_name"),
             "fitness": finite(r.get("fitness")), "status": r.get("status")}
            for r in records if r["id"] in chosen]


def table2(selection: Sequence[dict], metrics: Sequence[dict]) -> pd.DataFrame:
    """One row per (selected objective, reference); ``metrics`` are the AlpacaEval stage's records."""
    by_model = {(m["model_id"], m["reference"]): m for m in metrics}
    rows = []
    for entry in selection:
        model_id = entry["unit"].replace("/", "-")
        for reference in sorted({ref for (mid, ref) in by_model if mid == model_id}):
            m = by_model[(model_id, reference)]
            judge = m.get("judge") or {}
            rows.append({"objective": entry["objective"], "id": entry["id"], "reference": reference,
                         "status": m.get("status"), "win_rate": m.get("win_rate"),
                         "standard_error": m.get("standard_error"), "lc_win_rate": m.get("lc_win_rate"),
                         "lc_standard_error": m.get("lc_standard_error"), "avg_length": m.get("avg_length"),
                         "n_total": m.get("n_total"), "judge_calls": judge.get("calls"),
                         "judge_cost_usd": judge.get("total_cost_usd"), "error": m.get("error")})
    return pd.DataFrame(rows, columns=TABLE2_COLUMNS)


def _cell(value: Any, error: Any = None) -> str:
    v, e = finite(value), finite(error)
    if v is None:
        return "-"
    return f"{v:.2f} ± {e:.2f}" if e is not None else f"{v:.2f}"


def table2_markdown(table: pd.DataFrame) -> str:
    """Objectives as rows; per reference, win rate and LC win rate with their standard errors (as Table 2)."""
    references = list(dict.fromkeys(table["reference"]))
    header = ["Objective"]
    for reference in references:
        header += [f"vs {reference}: win rate (%)", f"vs {reference}: LC win rate (%)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (objective, _), group in table.groupby(["objective", "id"], sort=False):
        cells = [objective]
        for reference in references:
            row = group[group["reference"] == reference]
            if row.empty:
                cells += ["-", "-"]
                continue
            row = row.iloc[0]
            cells += [_cell(row["win_rate"], row["standard_error"]), _cell(row["lc_win_rate"], row["lc_standard_error"])]
        lines.append("| " + " | ".join(cells) + " |")
    cost = pd.to_numeric(table["judge_cost_usd"], errors="coerce").sum()
    lines += ["", f"AlpacaEval 2.0, weighted GPT-4 Turbo annotator; {len(table)} evaluations, judge cost "
                  f"{0.0 if math.isnan(cost) else cost:.4f} USD."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    select = commands.add_parser("select", help="objectives held out for AlpacaEval")
    select.add_argument("--archive", type=Path, required=True)
    select.add_argument("--top-k", type=int, required=True)
    select.add_argument("--no-seeds", action="store_true", help="leave the seed baselines out")
    select.add_argument("--output", type=Path, required=True)
    table = commands.add_parser("table2", help="AlpacaEval results as the paper's Table 2")
    table.add_argument("--selection", type=Path, required=True)
    table.add_argument("--metrics", type=Path, nargs="*", default=[])
    table.add_argument("--csv", type=Path, required=True)
    table.add_argument("--markdown", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()

    if args.command == "select":
        selection = select_held_out(read_jsonl(args.archive), args.top_k, not args.no_seeds)
        write_json(args.output, selection)
        log.info("held out for AlpacaEval: %s", ", ".join(f"{s['id']} {s['objective']}" for s in selection) or "none")
    else:
        frame = table2(read_json(args.selection), [read_json(p) for p in args.metrics])
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        write_text(args.csv, frame.to_csv(index=False))
        write_text(args.markdown, table2_markdown(frame))
        log.info("Table 2: %d rows", len(frame))


if __name__ == "__main__":
    main()
