"""Stage: transfer of the final archive's best classification objectives (the paper's Fig. 2, right).

    python -m prefdisco.classification.transfer select --archive archive.jsonl --top 3 --baselines cross_entropy \\
        --output selection.json
    python -m prefdisco.classification.transfer objective --selection selection.json --key g2-k1 --model simpledla \\
        --epochs 100 --seed 1 --output objective.json
    python -m prefdisco.classification.transfer table --selection selection.json --evaluations eval.json ... \\
        --output transfer.csv

The selection is the ``top`` evaluated discovered records of the final archive by the lower 95% bound of their
fitness (validation accuracy over training seeds x validation examples, :func:`prefdisco.intervals.lower_bound`; the
point fitness only for a record without intervals), plus the named library baselines; each is retrained on every
transfer model at every seed through the same train -> evaluate chain. The table gives, per (model, objective), the
mean validation and test accuracy with a 95% t-interval over seeds, beside the discovery fitness and its interval.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import re
import statistics
from pathlib import Path

from prefdisco.classification.objectives import LIBRARY, library_source
from prefdisco.cli import setup_logging
from prefdisco.intervals import ranking_score
from prefdisco.io import read_json, read_jsonl, write_json
from prefdisco.objectives import function_name

log = logging.getLogger(__name__)

COLUMNS = ("model", "objective", "name", "source", "seeds", "val_mean", "val_ci_low", "val_ci_high", "test_mean",
           "test_ci_low", "test_ci_high", "discovery_fitness", "discovery_ci_low", "discovery_ci_high",
           "discovery_seeds", "interval_method")
# two-sided 95% Student t quantiles by degrees of freedom (n - 1); beyond 30 the normal one is close enough
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       15: 2.131, 20: 2.086, 30: 2.042}


def discovery_estimate(record: dict | None) -> dict:
    """A record's fitness over every seed it was trained at, with its 95% interval and how many seeds (the bare
    one-seed fitness and no interval for a record without intervals)."""
    if record is None:
        return {"fitness": None, "fitness_low": None, "fitness_high": None, "fitness_seeds": 0}
    estimate = (record.get("intervals") or {}).get("fitness")
    if not estimate:
        return {"fitness": record.get("fitness"), "fitness_low": None, "fitness_high": None, "fitness_seeds": 1}
    return {"fitness": estimate["mean"], "fitness_low": estimate["low"], "fitness_high": estimate["high"],
            "fitness_seeds": estimate["seeds"]}


def select(archive: list[dict], top: int, baselines: list[str]) -> list[dict]:
    """The ``top`` best evaluated discovered records by lower bound of fitness, then the baselines from the library."""
    unknown = [name for name in baselines if name not in LIBRARY]
    if unknown:
        raise ValueError(f"classification.transfer.baselines: unknown {unknown}; the library holds {', '.join(LIBRARY)}")
    evaluated = [r for r in archive if r.get("status") == "ok" and r.get("fitness") is not None
                 and not r.get("library_name")]  # discovered objectives only: the seeds are the baselines
    best = sorted(evaluated, key=lambda r: (ranking_score(r), float(r["fitness"])), reverse=True)[:top]
    chosen = [{"key": r["id"], "name": r["name"], "code": r["code"], "source": "archive", **discovery_estimate(r)}
              for r in best]
    for name in baselines:
        code = library_source(name)
        record = next((r for r in archive if r.get("library_name") == name and r.get("status") == "ok"), None)
        chosen.append({"key": name, "name": function_name(code), "code": code, "source": "library",
                       **discovery_estimate(record)})
    return chosen


def objective_spec(selection: list[dict], key: str, model: str, epochs: int | None, seed: int, unit_id: str) -> dict:
    entry = next((e for e in selection if e["key"] == key), None)
    if entry is None:
        raise KeyError(f"{key!r} is not in the transfer selection ({', '.join(e['key'] for e in selection)})")
    overrides = {"model": model, "seed": seed, **({"epochs": epochs} if epochs else {})}
    return {"id": unit_id, "name": entry["name"], "code": entry["code"], "training_overrides": overrides}


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval over independent runs (a single run has no interval: NaN)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    df = len(values) - 1
    quantile = T95.get(df) or T95[max(k for k in T95 if k <= df)]
    half = quantile * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


UNIT = re.compile(r"transfer/(?P<model>[a-z0-9]+)/(?P<key>[A-Za-z0-9_-]+)/seed(?P<seed>\d+)")


def table(selection: list[dict], evaluations: list[tuple[str, dict]]) -> list[dict]:
    """Rows per (model, objective) from (unit path, eval.json) pairs; failed runs count as missing seeds."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for path, evaluation in evaluations:
        match = UNIT.search(path)
        if match is None:
            raise ValueError(f"{path}: not a transfer unit (transfer/<model>/<objective>/seed<s>/eval.json)")
        groups.setdefault((match["model"], match["key"]), []).append(evaluation)
    entries = {e["key"]: e for e in selection}
    rows = []
    for (model, key), results in sorted(groups.items(), key=lambda item: (item[0][0], list(entries).index(item[0][1]))):
        ok = [r for r in results if r.get("status") == "ok"]
        row = {"model": model, "objective": key, "name": entries[key]["name"], "source": entries[key]["source"],
               "seeds": len(ok), "discovery_fitness": entries[key].get("fitness"),
               "discovery_ci_low": entries[key].get("fitness_low"), "discovery_ci_high": entries[key].get("fitness_high"),
               "discovery_seeds": entries[key].get("fitness_seeds"), "interval_method": "t95_over_seeds"}
        for split in ("val", "test"):
            values = [r["metrics"][f"{split}_accuracy"] for r in ok]
            mean, low, high = t_interval(values) if values else (math.nan, math.nan, math.nan)
            row.update({f"{split}_mean": mean, f"{split}_ci_low": low, f"{split}_ci_high": high})
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sel = sub.add_parser("select")
    sel.add_argument("--archive", type=Path, required=True)
    sel.add_argument("--top", type=int, default=3)
    sel.add_argument("--baselines", nargs="*", default=["cross_entropy"])
    obj = sub.add_parser("objective")
    obj.add_argument("--selection", type=Path, required=True)
    obj.add_argument("--key", required=True)
    obj.add_argument("--model", required=True)
    obj.add_argument("--epochs", type=int, default=None)
    obj.add_argument("--seed", type=int, required=True)
    tab = sub.add_parser("table")
    tab.add_argument("--selection", type=Path, required=True)
    tab.add_argument("--evaluations", type=Path, nargs="+", required=True)
    for p in (sel, obj, tab):
        p.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    if args.command == "select":
        try:
            chosen = select(read_jsonl(args.archive), args.top, args.baselines)
        except ValueError as error:
            parser.error(str(error))
        write_json(args.output, chosen)
        log.info("transfer selection: %s", ", ".join(f"{e['key']} ({e['name']})" for e in chosen))
    elif args.command == "objective":
        unit = f"transfer/{args.model}/{args.key}/seed{args.seed}"
        write_json(args.output, objective_spec(read_json(args.selection), args.key, args.model, args.epochs,
                                               args.seed, unit))
    else:
        rows = table(read_json(args.selection), [(str(p), read_json(p)) for p in args.evaluations])
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with args.output.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        for row in rows:
            log.info("%s %s: test accuracy %.4f [%.4f, %.4f] over %d seeds", row["model"], row["objective"],
                     row["test_mean"], row["test_ci_low"], row["test_ci_high"], row["seeds"])


if __name__ == "__main__":
    main()
