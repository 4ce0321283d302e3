"""The run summary: a ranked table of every candidate in a discovery archive, as CSV and Markdown.

It reads the records as the figures do (:mod:`prefdisco.records`, :mod:`prefdisco.intervals`), so that the table
and the plots agree on what "evaluated" and "failed" mean, and on the order.

CLI::

    python -m prefdisco.stages.summary --archive A.jsonl --reference-eval R.json --csv S.csv --markdown S.md
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from prefdisco.intervals import interval, ranking_score
from prefdisco.io import read_json, read_jsonl, write_text
from prefdisco.objectives import DISPLAY_NAMES
from prefdisco.records import (DUPLICATE, EVAL_FAILED, FAILED, INVALID, OK, TRAIN_FAILED, TRAINED, Record, finite,
                               is_evaluated, metric, read_reference_metrics)
from prefdisco.statistics import HOLM, METHOD

log = logging.getLogger(__name__)

# Our IPO is the paper's form; TRL's built-in IPO is not, and a reader comparing the two must know.
IPO_NOTE = ("Baseline note: IPO here regresses the summed log-ratio margin (the paper's form); TRL >= 0.9's IPO "
            "normalises it per token, so the two are different objectives at the same beta.")
FAILED_STATUSES = FAILED
# Order of the unranked rows at the bottom of the table: closest to a result first.
_UNRANKED_ORDER = {OK: 0, EVAL_FAILED: 1, TRAIN_FAILED: 2, DUPLICATE: 3, INVALID: 4}

COLUMNS = [
    "rank",
    "id",
    "generation",
    "name",
    "library",
    "status",
    "fitness",
    "reward",
    "reward_sem",
    "kl",
    "kl_sem",
    "fitness_low",
    "fitness_high",
    "vs_control",
    "vs_control_low",
    "vs_control_high",
    "p_better_holm",
    "seeds",
    "seeds_reason",
    "duplicate_of",
    "proposer",
    "parents",
    "error",
]


def _estimate(record: dict, quantity: str, fallback, field: str = "mean"):
    """The record's estimate of ``quantity`` over its seeds x prompts (``field``: mean or se), else ``fallback``."""
    value = finite(interval(record, quantity).get(field))
    return value if value is not None else fallback


def error_headline(error: Any) -> str:
    """The line of an error message worth showing in a table.

    Normally its first line; for a Python traceback the first line is always "Traceback (most recent call
    last):", which says nothing, so the last non-empty line (the exception itself) is used instead.
    """
    if not error:
        return ""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].startswith("Traceback (most recent call last)"):
        return lines[-1]
    return lines[0]


# --- the table ---------------------------------------------------------------------------------------------------


def summary_table(records: Sequence[Record]) -> pd.DataFrame:
    """One row per candidate, ranked by fitness (descending); unranked rows (failed, invalid, duplicate) last.

    Columns are ``COLUMNS``: ``library`` is the display name of a library objective (empty for discovered ones),
    ``proposer`` the proposer backend, ``parents`` comma-joined ids, ``error`` the headline of the error.

    ``rank`` is 1..n over the evaluated candidates and missing (<NA>) for the rest. Ties in fitness keep archive
    order (generation, then candidate).
    """

    def archive_order(record: Record) -> tuple[int, int]:
        return (_as_int(record.get("generation")), _as_int(record.get("candidate")))

    ranked = sorted((r for r in records if is_evaluated(r)), key=lambda r: (-ranking_score(r), *archive_order(r)))
    unranked = sorted(
        (r for r in records if not is_evaluated(r)),
        key=lambda r: (_UNRANKED_ORDER.get(r.get("status"), len(_UNRANKED_ORDER)), *archive_order(r)),
    )

    rows = []
    for position, record in enumerate(ranked + unranked, start=1):
        rows.append(
            {
                "rank": position if position <= len(ranked) else None,
                "id": record.get("id"),
                "generation": record.get("generation"),
                "name": record.get("name"),
                "library": DISPLAY_NAMES.get(record.get("library_name"), record.get("library_name")),
                "status": record.get("status"),
                # Over every seed the record has, the numbers its interval is centred on; a record without
                # intervals (an older archive) shows its one evaluation.
                "fitness": _estimate(record, "fitness", finite(record.get("fitness"))),
                "reward": _estimate(record, "reward", metric(record, "reward")),
                "reward_sem": _estimate(record, "reward", metric(record, "reward_sem"), "se"),
                "kl": _estimate(record, "kl", metric(record, "kl")),
                "kl_sem": _estimate(record, "kl", metric(record, "kl_sem"), "se"),
                "fitness_low": finite(interval(record, "fitness").get("low")),
                "fitness_high": finite(interval(record, "fitness").get("high")),
                "vs_control": finite(interval(record, "vs_control").get("mean")),
                "vs_control_low": finite(interval(record, "vs_control").get("low")),
                "vs_control_high": finite(interval(record, "vs_control").get("high")),
                "p_better_holm": finite((record.get("intervals") or {}).get("p_better_holm")),
                "seeds": len((record.get("intervals") or {}).get("seeds") or []) or None,
                "seeds_reason": (record.get("intervals") or {}).get("seeds_reason"),
                "duplicate_of": record.get("duplicate_of"),
                "proposer": (record.get("proposer") or {}).get("backend"),
                "parents": ",".join(record.get("parents") or []),
                "error": error_headline(record.get("error")),
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["rank"] = table["rank"].astype("Int64")
    table["generation"] = table["generation"].astype("Int64")
    for column in ("fitness", "reward", "reward_sem", "kl", "kl_sem", "fitness_low", "fitness_high", "vs_control",
                   "vs_control_low", "vs_control_high", "p_better_holm"):
        table[column] = table[column].astype("float64")
    table["seeds"] = table["seeds"].astype("Int64")
    return table


def run_summary_line(records: Sequence[Record], reference: Mapping[str, Any] | None = None) -> str:
    """One sentence: candidates, valid, trained, evaluated, the best objective and the reference reward.

    valid = passed the sandbox checks (status is not "invalid"); trained = training finished (status ok or
    eval_failed); evaluated = status ok with a fitness.
    """
    total = len(records)
    seeds = sum(1 for r in records if r.get("generation") == 0)
    valid = sum(1 for r in records if r.get("status") != INVALID)
    trained = sum(1 for r in records if r.get("status") in TRAINED)
    evaluated = [r for r in records if is_evaluated(r)]
    parts = [f"{total} candidates ({seeds} seed baselines), {valid} valid, {trained} trained, {len(evaluated)} evaluated."]

    if evaluated:
        best = min(evaluated, key=lambda r: (-ranking_score(r), _as_int(r.get("generation")), _as_int(r.get("candidate"))))
        library = best.get("library_name")
        name = f"{best.get('name')} ({best.get('id')})"
        if library:
            name = f"{DISPLAY_NAMES.get(library, library)}, {name}"
        fitness = interval(best, "fitness")
        if finite(fitness.get("low")) is not None:
            text = (f"Best objective (highest lower bound): {name}, fitness {fitness['mean']:.4f} "
                    f"[{fitness['low']:.4f}, {fitness['high']:.4f}] over {fitness['seeds']} seed(s) x "
                    f"{fitness['prompts']} prompts")
        else:
            text = f"Best objective: {name}, fitness {float(best['fitness']):.4f}"
        # Over the same seeds as its fitness interval, as in the table.
        reward, kl = _estimate(best, "reward", metric(best, "reward")), _estimate(best, "kl", metric(best, "kl"))
        if reward is not None:
            text += f" (reward {_with_sem(reward, _estimate(best, 'reward', metric(best, 'reward_sem'), 'se'))}"
            text += f", KL {kl:.2f})" if kl is not None else ")"
        parts.append(text + ".")
    else:
        parts.append("Best objective: none (no evaluated candidates).")

    reference_reward = finite((reference or {}).get("reward"))
    if reference_reward is not None:
        parts.append(f"Reference reward: {_with_sem(reference_reward, finite(reference.get('reward_sem')))}.")
    else:
        parts.append("Reference reward: not available.")
    return " ".join(parts)


def proposer_usage_line(records: Sequence[Record]) -> str | None:
    """Tokens and cost of the run's LLM proposals (re-asks included), or None when no LLM proposed anything."""
    usages = [r.get("usage") or {} for r in records
              if (r.get("proposer") or {}).get("backend") in ("openai", "transformers")]
    if not usages:
        return None
    prompt = sum(int(u.get("prompt_tokens") or 0) for u in usages)
    completion = sum(int(u.get("completion_tokens") or 0) for u in usages)
    cost = sum(float(u.get("cost_usd") or 0.0) for u in usages)
    return f"Proposer usage: {len(usages)} LLM proposals, {prompt} prompt + {completion} completion tokens, ${cost:.4f}."


def markdown_table(table: pd.DataFrame, float_digits: int = 4) -> str:
    """A GitHub-style Markdown table, hand-rendered.

    Written here rather than DataFrame.to_markdown because tabulate (which that needs) does not escape "|" in
    cells, and error messages contain them; missing values render as empty cells.
    """
    header = [str(c) for c in table.columns]
    numeric = [pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if is_num else "---" for is_num in numeric) + "|",
    ]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_markdown_cell(value, float_digits) for value in row) + " |")
    return "\n".join(lines) + "\n"


def write_summary(
    records: Sequence[Record],
    csv_path: str | Path,
    markdown_path: str | Path,
    reference: Mapping[str, Any] | None = None,
    verdict: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Write the ranked table as CSV and as Markdown (the verdict, then the run summary line on top)."""
    table = summary_table(records)
    write_text(csv_path, table.to_csv(index=False))
    usage = proposer_usage_line(records)
    opening = ""
    if verdict:
        control = DISPLAY_NAMES.get(verdict.get("control"), verdict.get("control"))
        opening = (verdict["sentence"] + "\n\n" + f"Intervals are 95% over training seeds x held-out prompts "
                   f"({METHOD}). vs_control is the fitness difference to {control}, paired by seed and prompt; "
                   f"p_better_holm is its one-sided p-value, {HOLM}-adjusted over the discovered candidates. "
                   "Ranked by the lower bound of fitness.")
        planned = verdict.get("detectable_difference")
        if planned:
            opening += (f" At {planned['seeds']} seed(s) x {planned['prompts']} prompts this budget detects a fitness "
                        f"difference to {control} of {planned['value']:.4f} (80% power, 5% level; from the control's "
                        f"seed SD {planned['seed_sd']:.4f} and residual SD {planned['residual_sd']:.4f}).")
        opening += "\n\n"
    notes = [usage] if usage else []
    if any(r.get("library_name") == "ipo" for r in records):
        notes.append(IPO_NOTE)
    markdown = ("# Discovery run summary\n\n" + opening + run_summary_line(records, reference) + "\n\n"
                + "".join(note + "\n\n" for note in notes) + markdown_table(table))
    write_text(markdown_path, markdown)
    log.info("wrote summary of %d candidates to %s and %s", len(table), csv_path, markdown_path)
    return table


def _with_sem(value: float, sem: float | None) -> str:
    return f"{value:.4f} ± {sem:.4f}" if sem is not None else f"{value:.4f}"


def _as_int(value: Any) -> int:
    # Sorting keys only: a record missing its generation/candidate sorts last rather than crashing the summary.
    return int(value) if finite(value) is not None else 1 << 30


def _markdown_cell(value: Any, float_digits: int) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        text = f"{value:.{float_digits}f}"
    else:
        text = str(value)
    if len(text) > 120:
        text = text[:117] + "..."
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefdisco.stages.summary", description=__doc__.splitlines()[0])
    parser.add_argument("--archive", required=True, type=Path, help="archive JSONL, one record per candidate")
    parser.add_argument("--reference-eval", type=Path, help="evaluation JSON of the untrained reference model")
    parser.add_argument("--verdict", type=Path, help="verdict JSON of the final archive (prefdisco.stages.cascade final)")
    parser.add_argument("--csv", required=True, type=Path, help="output CSV")
    parser.add_argument("--markdown", required=True, type=Path, help="output Markdown")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    records = read_jsonl(args.archive)
    reference = read_reference_metrics(args.reference_eval) if args.reference_eval else None
    verdict = read_json(args.verdict) if args.verdict else None
    write_summary(records, args.csv, args.markdown, reference=reference, verdict=verdict)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
