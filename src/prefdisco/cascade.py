"""Noise-aware fitness: intervals and differences to the control in the archive, the cascade, and the verdict.

Three stages share this module:

- ``intervals`` (inside the archive stage): each evaluated record of generation g gets its fitness, reward and KL
  with 95% intervals and its paired difference to the control (``fitness.control``), from its one training seed
  and the control's first ``fitness.control_seeds`` seeds. This is what the search sees: parent selection, "best
  so far" and the LLM prompts read it.
- ``promote`` (a checkpoint after archive(g)): which of the generation's candidates could still be the best
  (:func:`prefdisco.statistics.promotions`) and get trained at ``fitness.seeds`` seeds; each becomes new jobs.
- ``final``: the final archive, every record re-estimated from all of its seeds and all of the control's, the
  Holm-corrected comparison with the control, and the verdict that opens summary.md.

A unit's training seed is in its path (``.../seed<s>/eval.json``); a candidate's first unit (``gen<g>/cand<k>``)
was trained at the run's first training seed (``--first-seed``).

Both objective families go through the same functions. A preference unit's values are per held-out prompt (fitness,
reward, KL); a classification unit's are per validation example (fitness: correct or not, so its mean is the
validation accuracy), and its records say so (``over``: "validation examples", ``examples``: how many).
"""

from __future__ import annotations

import argparse
import logging
import math
import re
from pathlib import Path
from typing import Mapping, Sequence

from .cli import setup_logging
from .experiments import is_per_example, per_prompt
from .io import read_json, read_jsonl, write_json, write_jsonl
from .objectives import display_name
from .statistics import (
    HOLM,
    METHOD,
    Estimate,
    estimate,
    holm,
    minimum_detectable_difference,
    p_value_greater,
    p_value_less,
    paired_difference,
    promotions,
    seed_variance_of,
    variance_components,
)

log = logging.getLogger(__name__)

QUANTITIES = ("fitness", "reward", "kl")
ALPHA = 0.05
# What a unit's values are crossed with training seeds over: held-out prompts (preference), or validation examples
# (classification: fitness only, there is no reward or KL).
PROMPTS = "held-out prompts"
EXAMPLES = "validation examples"
EXAMPLE_METHOD = METHOD.replace(PROMPTS, EXAMPLES)


def seed_of(path: Path | str, first_seed: int) -> int:
    """The training seed of a unit from its eval.json path; a candidate's first unit has the run's seed."""
    match = re.search(r"/seed(\d+)/eval\.json$", str(path))
    return int(match.group(1)) if match else first_seed


def values_by_seed(evaluations: Mapping[int, dict], quantity: str, kl_penalty: float) -> dict[int, list]:
    """Per-prompt values of each evaluated seed (units that failed or carry no per-prompt values are left out)."""
    values = {}
    for seed, record in sorted(evaluations.items()):
        if record.get("status") != "ok":
            continue
        row = per_prompt(record, quantity, kl_penalty)
        if row is not None:
            values[seed] = row
    return values


def _complete_columns(*tables: Mapping[int, list]) -> list[int]:
    """Prompts that every seed of every table has a value for (an unparsed MT-Bench judgment has none)."""
    rows = [row for table in tables for row in table.values()]
    width = min(len(row) for row in rows)
    return [p for p in range(width) if all(row[p] is not None and math.isfinite(row[p]) for row in rows)]


def _select(table: Mapping[int, list], columns: list[int]) -> dict[int, list[float]]:
    return {seed: [float(row[p]) for p in columns] for seed, row in table.items()}


def unit_intervals(evaluations: Mapping[int, dict], control: Mapping[int, dict], kl_penalty: float,
                   control_name: str) -> dict | None:
    """Fitness, reward and KL with 95% intervals over seeds x prompts, and the fitness difference to the control.

    ``evaluations`` and ``control`` map a training seed to an eval.json record. None when the unit has no
    per-prompt values (nothing to build an interval from). A classification unit gets fitness alone, over seeds x
    validation examples.
    """
    examples = any(is_per_example(r) for r in evaluations.values() if r.get("status") == "ok")
    result: dict = {"method": EXAMPLE_METHOD if examples else METHOD, "control": control_name,
                    "over": EXAMPLES if examples else PROMPTS}
    for quantity in ("fitness",) if examples else QUANTITIES:
        mine = values_by_seed(evaluations, quantity, kl_penalty)
        if not mine:
            return None
        theirs = values_by_seed(control, quantity, kl_penalty)
        columns = _complete_columns(mine, theirs) if theirs else _complete_columns(mine)
        if not columns:
            return None
        mine, theirs = _select(mine, columns), _select(theirs, columns)
        borrowed = seed_variance_of(list(theirs.values())) if len(theirs) > 1 else None
        result[quantity] = estimate(list(mine.values()), borrowed).as_dict()
        if quantity == "fitness":
            result["seeds"] = sorted(mine)
            result["examples" if examples else "prompts"] = len(columns)
            common = set(mine) & set(theirs)
            result["vs_control"] = (paired_difference(mine, theirs, borrowed.doubled() if borrowed else None)
                                    .as_dict() if common else None)
    return result


def attach_intervals(records: list[dict], control: Mapping[int, dict], kl_penalty: float, control_name: str,
                     first_seed: int) -> None:
    """Give each evaluated record of a generation its one-seed intervals (``intervals``) in place."""
    for record in records:
        if record.get("status") == "ok":
            units = {first_seed: {"status": "ok", "metrics": record.get("metrics") or {}}}
            record["intervals"] = unit_intervals(units, control, kl_penalty, control_name)


def control_intervals(control: Mapping[int, dict], kl_penalty: float, control_name: str) -> dict | None:
    """The control's own estimates (its difference to itself is zero by construction)."""
    result = unit_intervals(control, control, kl_penalty, control_name)
    if result is not None:
        result["vs_control"] = None
    return result


def lower_bound(record: Mapping) -> float | None:
    """The interval-aware score the search ranks by: the lower 95% bound of fitness (None when unknown)."""
    fitness = (record.get("intervals") or {}).get("fitness")
    if fitness and math.isfinite(fitness["low"]):
        return float(fitness["low"])
    return None


def ranking_score(record: Mapping) -> float:
    """What ranks evaluated records: the lower bound where known, else the fitness itself (no intervals yet)."""
    low = lower_bound(record)
    return low if low is not None else float(record["fitness"])


def is_control(record: Mapping, control_name: str) -> bool:
    return record.get("library_name") == control_name


# --- promote: the cascade's checkpoint ----------------------------------------------------------------------------


def promotion_decisions(archive: Sequence[dict], generation: int, control: dict | None,
                        control_name: str) -> list[dict]:
    """For each evaluated candidate of ``generation``: promoted to more seeds or not, and why."""
    estimates = {r["id"]: Estimate.from_dict(r["intervals"]["fitness"]) for r in archive
                 if r.get("status") == "ok" and (r.get("intervals") or {}).get("fitness")}
    if control and control.get("fitness"):
        estimates["control"] = Estimate.from_dict(control["fitness"])
    new = [r for r in archive if r.get("generation") == generation and r["id"] in estimates]
    decisions = promotions(estimates, [r["id"] for r in new if not is_control(r, control_name)])
    out = []
    for record in new:
        if is_control(record, control_name):
            out.append({"id": record["id"], "candidate": record["candidate"], "promoted": False,
                        "reason": f"the control objective ({control_name}): trained at every seed as the control"})
        else:
            promoted, reason = decisions[record["id"]]
            out.append({"id": record["id"], "candidate": record["candidate"], "promoted": promoted, "reason": reason})
    return out


# --- final: every seed, Holm, the verdict ---------------------------------------------------------------------------


def final_records(archive: Sequence[dict], promoted: Mapping[str, str], not_promoted: Mapping[str, str],
                  replicas: Mapping[str, Mapping[int, dict]], control: Mapping[int, dict], kl_penalty: float,
                  control_name: str, first_seed: int) -> list[dict]:
    """The archive re-estimated from every seed (first unit + replicas), with how many seeds each got and why."""
    records = []
    for record in archive:
        record = dict(record)
        if record.get("status") == "ok" and record.get("intervals"):
            if record["id"] in promoted:
                seeds_reason = f"promoted: {promoted[record['id']]}"
            else:
                seeds_reason = not_promoted.get(record["id"], "not promoted")
            # A replica that failed (an objective that diverges at another seed) leaves the estimate to the seeds
            # that trained; the record says which did not, and why.
            failed = {seed: unit for seed, unit in sorted(replicas.get(record["id"], {}).items())
                      if unit.get("status") != "ok"}
            if failed:
                seeds_reason += "; " + "; ".join(f"seed {seed} {unit.get('status')}: {unit.get('error')}"
                                                 for seed, unit in failed.items())
            if is_control(record, control_name) and control:
                # The control's record is its first seed; every comparison uses all of its seeds, so does its row.
                replicated = control_intervals(control, kl_penalty, control_name)
            else:
                units = {first_seed: {"status": "ok", "metrics": record["metrics"]}, **replicas.get(record["id"], {})}
                replicated = unit_intervals(units, control, kl_penalty, control_name)
            if replicated is not None:
                replicated["seeds_reason"] = seeds_reason
                record["intervals"] = replicated
        records.append(record)
    return records


def compare_with_control(records: list[dict], control_name: str, alpha: float = ALPHA) -> dict:
    """Holm-corrected one-sided tests of every discovered candidate against the control, and the verdict.

    The family is the discovered candidates (generation >= 1) with a difference to the control; the library
    baselines of generation 0 are shown but not what the run set out to find. Each record in the family gets
    ``p_better``/``p_better_holm`` in its intervals. Answer: "yes" when some candidate beats the control after the
    correction, "no" when every candidate is worse after it, else "not distinguishable at this budget".
    """
    family = [r for r in records if r.get("generation", 0) >= 1 and r.get("status") == "ok"
              and (r.get("intervals") or {}).get("vs_control") and not is_control(r, control_name)]
    control_label = display_name(control_name)
    if not family:
        return {"answer": "no", "control": control_name, "correction": HOLM, "compared": 0, "best": None,
                "sentence": f"Verdict: no: no discovered candidate was evaluated, so none can beat {control_label}."}
    differences = [Estimate.from_dict(r["intervals"]["vs_control"]) for r in family]
    better = holm([p_value_greater(d) for d in differences])
    worse = holm([p_value_less(d) for d in differences])
    for record, p_raw, p_adj, d in zip(family, map(p_value_greater, differences), better, differences):
        record["intervals"]["p_better"] = p_raw
        record["intervals"]["p_better_holm"] = p_adj
    winners = [i for i, p in enumerate(better) if p < alpha]
    pick = max(winners or range(len(family)), key=lambda i: (differences[i].low, differences[i].mean))
    best, difference = family[pick], differences[pick]
    fitness = Estimate.from_dict(best["intervals"]["fitness"])
    over = best["intervals"].get("over", PROMPTS)  # an Estimate's "prompts" are a classification's examples
    detail = (f"fitness {fitness.text(4)}, difference {difference.text(4, signed=True)} (95% interval over "
              f"{difference.seeds} training seed(s) x {difference.prompts} {over}, paired; "
              f"{HOLM}-adjusted one-sided p = {better[pick]:.3g} over {len(family)} discovered candidates)")
    name = f"{best.get('name')} ({best['id']})"
    if winners:
        answer = "yes"
        sentence = f"Verdict: yes: {name} beats {control_label}: {detail}."
    elif all(p < alpha for p in worse):
        answer = "no"
        sentence = (f"Verdict: no: every discovered candidate is worse than {control_label} after {HOLM}'s "
                    f"correction; the closest, {name}: {detail}.")
    else:
        answer = "not distinguishable at this budget"
        sentence = (f"Verdict: not distinguishable at this budget: no discovered candidate beats {control_label} "
                    f"after {HOLM}'s correction; the best by lower bound, {name}: {detail}.")
    return {"answer": answer, "control": control_name, "correction": HOLM, "compared": len(family),
            "best": best["id"], "difference": difference.as_dict(), "p_holm": better[pick], "sentence": sentence}


def planned_detectable_difference(control: Mapping[int, dict], kl_penalty: float, seeds: int) -> dict | None:
    """The fitness difference to the control that a candidate at ``seeds`` seeds detects with 80% power at the 5%
    level (two-sided), from the control's own variance components: prompt effects cancel in the pairing, the
    seed and residual components of both units add (2 var_seed / n + 2 var_resid / (n P))."""
    table = values_by_seed(control, "fitness", kl_penalty)
    if len(table) < 2:
        return None
    columns = _complete_columns(table)
    if len(columns) < 2:
        return None
    rows = list(_select(table, columns).values())
    seed_var, _, resid_var = variance_components(rows)
    se = math.sqrt(2 * seed_var / seeds + 2 * resid_var / (seeds * len(columns)))
    return {"seeds": seeds, "prompts": len(columns), "se": se, "value": minimum_detectable_difference(se),
            "seed_sd": math.sqrt(seed_var), "residual_sd": math.sqrt(resid_var),
            "basis": "the control's seed and residual variance components; 80% power, 5% level, two-sided"}


def _evaluations_by_seed(paths: Sequence[Path], first_seed: int) -> dict[int, dict]:
    return {seed_of(path, first_seed): read_json(path) for path in paths}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    promote = sub.add_parser("promote", help="the cascade's decision for one generation")
    promote.add_argument("--archive", type=Path, required=True)
    promote.add_argument("--generation", type=int, required=True)
    final = sub.add_parser("final", help="the final archive from every seed, and the verdict")
    final.add_argument("--archive", type=Path, required=True)
    final.add_argument("--promotions", type=Path, nargs="*", default=[])
    final.add_argument("--replicas", type=Path, nargs="*", default=[], help="eval.json of gen<g>/cand<k>/seed<s>")
    final.add_argument("--verdict", type=Path, required=True)
    final.add_argument("--seeds", type=int, default=1, help="seeds of a promoted candidate (fitness.seeds)")
    for p in (promote, final):
        p.add_argument("--control", type=Path, nargs="+", required=True, help="the control's eval.json, per seed")
        p.add_argument("--control-name", default="dpo")
        p.add_argument("--kl-penalty", type=float, required=True)
        p.add_argument("--first-seed", type=int, default=0)
        p.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    control = _evaluations_by_seed(args.control, args.first_seed)
    archive = read_jsonl(args.archive)
    if args.stage == "promote":
        summary = control_intervals(control, args.kl_penalty, args.control_name)
        decisions = promotion_decisions(archive, args.generation, summary, args.control_name)
        write_json(args.output, decisions)
        log.info("generation %d: promoted %s", args.generation, [d["id"] for d in decisions if d["promoted"]])
        return
    promoted, not_promoted = {}, {}
    for path in args.promotions:
        for decision in read_json(path):
            (promoted if decision["promoted"] else not_promoted)[decision["id"]] = decision["reason"]
    replicas: dict[str, dict[int, dict]] = {}
    for path in args.replicas:
        match = re.search(r"gen(\d+)/cand(\d+)/seed(\d+)/eval\.json$", str(path))
        if not match:
            raise ValueError(f"--replicas: {path} is not a gen<g>/cand<k>/seed<s>/eval.json")
        replicas.setdefault(f"g{match.group(1)}-k{match.group(2)}", {})[int(match.group(3))] = read_json(path)
    records = final_records(archive, promoted, not_promoted, replicas, control, args.kl_penalty,
                            args.control_name, args.first_seed)
    verdict = compare_with_control(records, args.control_name)
    verdict["control_intervals"] = control_intervals(control, args.kl_penalty, args.control_name)
    verdict["detectable_difference"] = planned_detectable_difference(control, args.kl_penalty, args.seeds)
    if verdict.get("difference"):
        verdict["detectable_difference_observed"] = minimum_detectable_difference(verdict["difference"]["se"])
    write_jsonl(args.output, records)
    write_json(args.verdict, verdict)
    log.info("%s", verdict["sentence"])


if __name__ == "__main__":
    main()
