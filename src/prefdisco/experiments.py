"""Stage: the table of fixed experiments (objective x beta x seed), aggregated over seeds.

Each row is one (experiment, objective, beta): the mean over seeds of held-out reward and KL, the seed-to-seed
standard deviation (the noise a discovery must beat), and the reference model's reward for comparison.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
from pathlib import Path

import pandas as pd

from .cli import setup_logging
from .io import read_json
from .records import OK, parse_experiment_unit_id

log = logging.getLogger(__name__)


def experiments_table(evaluations: list[dict], reference: dict) -> pd.DataFrame:
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for record in evaluations:
        experiment, objective, beta, _seed = parse_experiment_unit_id(record["id"])
        groups.setdefault((experiment, objective, beta), []).append(record)
    rows = []
    for (experiment, objective, beta), records in sorted(groups.items()):
        ok = [r for r in records if r["status"] == OK]
        rewards = [r["metrics"]["reward"] for r in ok]
        kls = [r["metrics"]["kl"] for r in ok]
        rows.append({
            "experiment": experiment, "objective": objective, "beta": float(beta), "seeds": len(records),
            "evaluated": len(ok),
            "reward_mean": statistics.fmean(rewards) if rewards else math.nan,
            "reward_seed_std": statistics.stdev(rewards) if len(rewards) > 1 else math.nan,
            "kl_mean": statistics.fmean(kls) if kls else math.nan,
            "kl_seed_std": statistics.stdev(kls) if len(kls) > 1 else math.nan,
            "reference_reward": reference["metrics"]["reward"],
            "reward_gain": (statistics.fmean(rewards) - reference["metrics"]["reward"]) if rewards else math.nan,
        })
    return pd.DataFrame(rows)


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
