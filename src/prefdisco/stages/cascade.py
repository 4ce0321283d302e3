"""Stage: the cascade's checkpoint after each generation, and the final archive with the verdict.

- ``promote`` (a checkpoint after archive(g)): which of the generation's candidates could still be the best
  (:func:`prefdisco.statistics.promotions`) and get trained at ``fitness.seeds`` seeds; each becomes new jobs.
- ``final``: the final archive, every record re-estimated from all of its seeds and all of the control's, the
  Holm-corrected comparison with the control, and the verdict that opens summary.md.

The intervals themselves (a record's fitness, reward and KL over seeds x prompts, and its paired difference to the
control, ``fitness.control``) are :mod:`prefdisco.intervals`: the archive stage attaches the one-seed ones that
the search sees (parent selection, "best so far", the LLM prompts); this stage re-estimates them from every seed.
A unit's training seed is in its path (``.../seed<s>/eval.json``); a candidate's first unit (``gen<g>/cand<k>``)
was trained at the run's first training seed (``--first-seed``). Both objective families go through it: a
classification unit's values are per validation example rather than per held-out prompt.
"""
from __future__ import annotations

import argparse
import logging
import math
import re
from pathlib import Path
from typing import Mapping, Sequence

from ..cli import setup_logging
from ..intervals import (
    PROMPTS,
    complete_columns,
    control_intervals,
    seed_of,
    select_columns,
    unit_intervals,
    values_by_seed,
)
from ..io import read_json, read_jsonl, write_json, write_jsonl
from ..objectives import display_name
from ..statistics import (
    HOLM,
    Estimate,
    holm,
    minimum_detectable_difference,
    p_value_greater,
    p_value_less,
    promotions,
    variance_components,
)

log = logging.getLogger(__name__)

ALPHA = 0.05


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
    columns = complete_columns(table)
    if len(columns) < 2:
        return None
    rows = list(select_columns(table, columns).values())
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
