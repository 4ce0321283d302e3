"""Stage: the table of fixed experiments (objective x beta x seed), with 95% intervals over seeds x prompts.

Each row is one (experiment, objective, beta): the held-out reward and KL, each a mean over training seeds and
held-out prompts with its 95% interval (:mod:`prefdisco.statistics`), and the reference model's reward. The paper's
figures read exactly these columns (``COLUMNS``). The per-prompt values those intervals are made of come from the
evaluation records through :mod:`prefdisco.intervals`, as the cascade's do.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..cli import setup_logging
from ..intervals import per_prompt
from ..io import read_json
from ..records import OK, parse_experiment_unit_id
from ..statistics import METHOD, estimate

log = logging.getLogger(__name__)

COLUMNS = ["experiment", "objective", "beta", "seeds", "evaluated", "n_prompts", "reward_mean", "reward_ci_low",
           "reward_ci_high", "kl_mean", "kl_ci_low", "kl_ci_high", "reference_reward", "interval_method"]
ONE_SEED_METHOD = METHOD + "; one seed and no control here: prompts only"


def matrix(rows: Sequence[Sequence[float | None]]) -> list[list[float]]:
    """Seeds x prompts with the prompts that any seed lacks (an unparsed judgment) left out of every seed."""
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise ValueError(f"units disagree on the number of held-out prompts: {sorted(widths)}")
    keep = [p for p in range(len(rows[0])) if all(row[p] is not None and math.isfinite(row[p]) for row in rows)]
    return [[float(row[p]) for p in keep] for row in rows]


def unit_seed(unit_id: str) -> int:
    match = re.search(r"seed(\d+)$", unit_id)
    if not match:
        raise ValueError(f"experiment unit {unit_id!r} does not end in seed<s>")
    return int(match.group(1))


def _interval(rows: list[list[float | None]]) -> tuple[float, float, float, int, bool]:
    if not rows:
        return math.nan, math.nan, math.nan, 0, False
    values = matrix(rows)
    if not values[0]:
        return math.nan, math.nan, math.nan, 0, False
    result = estimate(values)
    return result.mean, result.low, result.high, len(values[0]), result.seed_variance == "none"


def experiments_table(evaluations: list[dict], reference: dict) -> pd.DataFrame:
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for record in evaluations:
        experiment, objective, beta, _seed = parse_experiment_unit_id(record["id"])
        groups.setdefault((experiment, objective, beta), []).append(record)
    rows = []
    for (experiment, objective, beta), records in sorted(groups.items()):
        ok = sorted((r for r in records if r["status"] == OK), key=lambda r: unit_seed(r["id"]))
        missing = [r["id"] for r in ok if per_prompt(r, "reward") is None]
        if missing:
            raise ValueError(f"{missing[0]}: eval.json has no metrics.per_prompt; re-run its evaluation")
        reward = _interval([per_prompt(r, "reward") for r in ok])
        kl = _interval([per_prompt(r, "kl") for r in ok])
        rows.append({
            "experiment": experiment, "objective": objective, "beta": float(beta), "seeds": len(records),
            "evaluated": len(ok), "n_prompts": reward[3],
            "reward_mean": reward[0], "reward_ci_low": reward[1], "reward_ci_high": reward[2],
            "kl_mean": kl[0], "kl_ci_low": kl[1], "kl_ci_high": kl[2],
            "reference_reward": reference["metrics"]["reward"],
            "interval_method": ONE_SEED_METHOD if reward[4] else METHOD,
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=Path, nargs="*", default=[])
    parser.add_argument("--reference-eval", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    table = experiments_table([read_json(p) for p in args.evaluations], read_json(args.reference_eval))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output, index=False)
    log.info("\n%s", table.to_string(index=False))


if __name__ == "__main__":
    main()
