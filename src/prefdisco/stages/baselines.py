"""Stage: did the search beat chance? The discovery's best against the search baselines' best, at equal budget.

Each baseline is a search of its own beside the discovery run (results/<run>/baselines/<name>/), with the same
generations x population proposals, the same cascade (seeds) and the same reference, data, control and
generation 0:

- ``random``: random search over the evolution backend's expression space, without selection
  (:mod:`prefdisco.proposers.random_search`);
- ``best_of_n``: "sample N, keep the best": the discovery's own proposer, every generation proposing from the
  generation-0 archive only, so no proposal ever sees another's score.

Every search names its best by the same interval-aware rule, the verdict's (:func:`prefdisco.stages.cascade.compare_with_control`):
the discovered candidate with the highest lower bound of its difference to the control, among those that beat it
after Holm's correction when there are any. The table gives each best's fitness and difference to the control with
95% intervals over seeds x prompts, and the paired difference of the discovery's best minus each baseline's best:
prompt by prompt on the held-out prompts and seed by seed on the training seeds both were trained at. The one-sided
p-values of "the discovery's best is better" are Holm-corrected over the baselines compared.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..cli import setup_logging
from ..intervals import complete_columns, seed_of, select_columns, values_by_seed
from ..io import read_json, read_jsonl, write_text
from ..records import OK, TRAIN_FAILED, TRAINED
from ..statistics import (
    HOLM,
    METHOD,
    Estimate,
    holm,
    p_value_greater,
    paired_difference,
    seed_variance_of,
)

log = logging.getLogger(__name__)

DISCOVERY = "discovery"
DESCRIPTIONS = {
    DISCOVERY: "the discovery run (its proposer, with feedback from every generation)",
    "random": "random search over the evolution backend's expression space (no selection)",
    "best_of_n": "sample N with the discovery's proposer from the generation-0 archive only, keep the best",
}
COLUMNS = ["search", "description", "proposed", "trained", "evaluated", "replica_trainings", "best", "best_name",
           "seeds", "n_prompts", "fitness_mean", "fitness_ci_low", "fitness_ci_high", "vs_control_mean",
           "vs_control_ci_low", "vs_control_ci_high", "verdict", "discovery_minus_mean", "discovery_minus_ci_low",
           "discovery_minus_ci_high", "paired_seeds", "p_discovery_better_holm", "comparison", "interval_method"]
REPLICA = re.compile(r"^(?P<search>.*)/gen(?P<g>\d+)/cand(?P<k>\d+)/seed(?P<seed>\d+)/eval\.json$")


def budget(records: Sequence[Mapping]) -> dict[str, int]:
    """What a search spent beyond the shared generation 0: proposals, trained candidates and evaluated ones."""
    searched = [r for r in records if r.get("generation", 0) >= 1]
    return {"proposed": len(searched),
            "trained": sum(r.get("status") in (*TRAINED, TRAIN_FAILED) for r in searched),
            "evaluated": sum(r.get("status") == OK for r in searched)}


def best_values(record: Mapping, replicas: Mapping[int, dict], kl_penalty: float, first_seed: int) -> dict[int, list]:
    """Per-prompt fitness of a record at each of its training seeds: its first unit and its replicas."""
    units = {first_seed: {"status": record.get("status"), "metrics": record.get("metrics") or {}}, **replicas}
    return values_by_seed(units, "fitness", kl_penalty)


def discovery_minus(discovery: Mapping[int, list], baseline: Mapping[int, list],
                    control: Mapping[int, list]) -> Estimate | None:
    """The paired difference discovery best - baseline best, on the prompts all three have; a one-seed difference
    borrows twice the control's seed variance, as every difference to the control does. None without a common
    training seed."""
    if not discovery or not baseline or not set(discovery) & set(baseline):
        return None
    columns = complete_columns(discovery, baseline, *([control] if control else []))
    if not columns:
        return None
    borrowed = seed_variance_of(list(select_columns(control, columns).values())) if len(control) > 1 else None
    return paired_difference(select_columns(discovery, columns), select_columns(baseline, columns),
                             borrowed.doubled() if borrowed else None)


def comparison_words(name: str, difference: Estimate | None, p_holm: float | None, alpha: float = 0.05) -> str:
    if difference is None:
        return "no comparison: a search has no evaluated discovered candidate"
    if p_holm is not None and p_holm < alpha:
        return f"the discovery's best beats {name}'s best"
    if math.isfinite(difference.high) and difference.high < 0:
        return f"{name}'s best beats the discovery's best"
    return "not distinguishable at this budget"


def baselines_table(searches: Mapping[str, tuple[list[dict], dict]], replicas: Mapping[str, Mapping[str, dict]],
                    control: Mapping[int, dict], kl_penalty: float, first_seed: int) -> tuple[pd.DataFrame, str]:
    """One row per search (discovery first), and the sentence that answers "did the search beat chance?".

    ``searches`` maps a search name to (final archive, verdict); ``replicas`` maps a search name to
    {candidate id: {seed: eval.json record}}; ``control`` maps a training seed to the control's eval.json record.
    """
    if DISCOVERY not in searches:
        raise ValueError(f"no {DISCOVERY!r} search among {sorted(searches)}")
    control_values = values_by_seed(control, "fitness", kl_penalty)
    bests: dict[str, tuple[dict | None, dict[int, list]]] = {}
    for name, (records, verdict) in searches.items():
        best = next((r for r in records if r["id"] == verdict.get("best")), None)
        values = best_values(best, replicas.get(name, {}).get(best["id"], {}), kl_penalty, first_seed) if best else {}
        bests[name] = (best, values)
    discovery_values = bests[DISCOVERY][1]
    differences = {name: discovery_minus(discovery_values, values, control_values)
                   for name, (_, values) in bests.items() if name != DISCOVERY}
    compared = [name for name, d in differences.items() if d is not None]
    adjusted = dict(zip(compared, holm([p_value_greater(differences[n]) for n in compared])))
    rows = []
    for name, (records, verdict) in searches.items():
        best, values = bests[name]
        intervals = (best or {}).get("intervals") or {}
        fitness, versus = intervals.get("fitness") or {}, intervals.get("vs_control") or {}
        difference = differences.get(name)
        rows.append({
            "search": name, "description": DESCRIPTIONS.get(name, name), **budget(records),
            "replica_trainings": len([s for reps in replicas.get(name, {}).values() for s in reps]),
            "best": verdict.get("best"), "best_name": (best or {}).get("name"),
            "seeds": len(values), "n_prompts": fitness.get("prompts"),
            "fitness_mean": fitness.get("mean"), "fitness_ci_low": fitness.get("low"),
            "fitness_ci_high": fitness.get("high"), "vs_control_mean": versus.get("mean"),
            "vs_control_ci_low": versus.get("low"), "vs_control_ci_high": versus.get("high"),
            "verdict": verdict.get("answer"),
            "discovery_minus_mean": difference.mean if difference else None,
            "discovery_minus_ci_low": difference.low if difference else None,
            "discovery_minus_ci_high": difference.high if difference else None,
            "paired_seeds": difference.seeds if difference else None,
            "p_discovery_better_holm": adjusted.get(name),
            "comparison": "" if name == DISCOVERY else comparison_words(name, difference, adjusted.get(name)),
            "interval_method": METHOD,
        })
    return pd.DataFrame(rows, columns=COLUMNS), answer_sentence(rows)


def answer_sentence(rows: Sequence[Mapping]) -> str:
    """One sentence: did the discovery's best beat each baseline's best, with the difference and its interval."""
    parts = []
    for row in rows[1:]:
        if row["discovery_minus_mean"] is None:
            parts.append(f"against {row['search']}: {row['comparison']}")
        else:
            parts.append(f"against {row['search']}: {row['comparison']}, difference "
                         f"{_signed(row['discovery_minus_mean'])} [{_signed(row['discovery_minus_ci_low'])}, "
                         f"{_signed(row['discovery_minus_ci_high'])}] ({row['paired_seeds']} paired seed(s) x "
                         f"{row['n_prompts']} held-out prompts; {HOLM}-adjusted one-sided p = "
                         f"{row['p_discovery_better_holm']:.3g})")
    beat = all(r["comparison"].startswith("the discovery's best beats") for r in rows[1:]) and len(rows) > 1
    opening = "Search vs chance: yes" if beat else "Search vs chance: not shown"
    return f"{opening}: " + "; ".join(parts) + "."


def _signed(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.4f}"


def _number(value, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if _present(value) and math.isfinite(value) else ""


def _present(value) -> bool:
    """Not missing: a table cell pandas may have turned from None into NaN."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def markdown(table: pd.DataFrame, sentence: str) -> str:
    lines = ["# Search baselines at equal budget", "", sentence, "",
             ("| search | proposed | trained | evaluated | replica seeds | best | seeds | fitness [95% CI] "
              "| vs control [95% CI] | discovery best minus this best [95% CI] | Holm p | comparison |"),
             "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- | --- | ---: | --- |"]
    for row in table.to_dict("records"):
        fitness = (f"{_number(row['fitness_mean'])} [{_number(row['fitness_ci_low'])}, "
                   f"{_number(row['fitness_ci_high'])}]") if _present(row["fitness_mean"]) else ""
        versus = (f"{_signed(row['vs_control_mean'])} [{_signed(row['vs_control_ci_low'])}, "
                  f"{_signed(row['vs_control_ci_high'])}]") if _present(row["vs_control_mean"]) else ""
        minus = (f"{_signed(row['discovery_minus_mean'])} [{_signed(row['discovery_minus_ci_low'])}, "
                 f"{_signed(row['discovery_minus_ci_high'])}]") if _present(row["discovery_minus_mean"]) else ""
        best = f"{row['best_name']} ({row['best']})" if _present(row["best"]) else "none evaluated"
        lines.append(f"| {row['search']} | {row['proposed']} | {row['trained']} | {row['evaluated']} "
                     f"| {row['replica_trainings']} | {best} | {row['seeds']} | {fitness} | {versus} | {minus} "
                     f"| {_number(row['p_discovery_better_holm'], 3)} | {row['comparison']} |")
    lines += ["", "Searches:"]
    lines += [f"- {row['search']}: {row['description']}" for row in table.to_dict("records")]
    lines += ["", (f"Intervals: {METHOD}. Each search's best is chosen by the verdict's rule (highest lower bound of "
              "the difference to the control, after Holm's correction when any candidate beats it) and then "
              "re-estimated from every seed the cascade gave it; the difference of two selected maxima still "
              "carries some selection bias, which more seeds (fitness.seeds) shrink. Budgets are counted beyond "
              "the shared generation 0. best_of_n's generation 1 reads what the discovery's generation 1 read "
              "(generation 0 only) with the same proposer seed, so the two propose alike there and part from "
              "generation 2 on, where only the discovery sees the scores.")]
    return "\n".join(lines) + "\n"


def replicas_by_search(paths: Sequence[Path], folders: Mapping[str, Path]) -> dict[str, dict[str, dict[int, dict]]]:
    """{search: {candidate id: {seed: eval.json}}} from replica paths <search folder>/gen<g>/cand<k>/seed<s>/eval.json;
    generation 0's replicas belong to the run and are no search's own (a best is always discovered)."""
    out: dict[str, dict[str, dict[int, dict]]] = {name: {} for name in folders}
    by_folder = {Path(folder): name for name, folder in folders.items()}
    for path in paths:
        match = REPLICA.match(Path(path).as_posix())
        if not match:
            raise ValueError(f"--replicas: {path} is not a <search>/gen<g>/cand<k>/seed<s>/eval.json")
        name = by_folder.get(Path(match.group("search")))
        if name is None or match.group("g") == "0":
            continue
        out[name].setdefault(f"g{match.group('g')}-k{match.group('k')}", {})[int(match.group("seed"))] = read_json(path)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", nargs="+", required=True, help="search names, the discovery first")
    parser.add_argument("--archives", type=Path, nargs="+", required=True, help="each search's final archive")
    parser.add_argument("--verdicts", type=Path, nargs="+", required=True, help="each search's verdict.json")
    parser.add_argument("--replicas", type=Path, nargs="*", default=[], help="replica eval.json of every search")
    parser.add_argument("--control", type=Path, nargs="+", required=True, help="the control's eval.json, per seed")
    parser.add_argument("--kl-penalty", type=float, required=True)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--markdown", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    if not len(args.names) == len(args.archives) == len(args.verdicts):
        parser.error(f"--names, --archives and --verdicts must pair up: {len(args.names)}, {len(args.archives)}, "
                     f"{len(args.verdicts)} given")
    if args.names[0] != DISCOVERY:
        parser.error(f"--names: the first search must be {DISCOVERY!r}, got {args.names[0]!r}")
    searches = {name: (read_jsonl(archive), read_json(verdict))
                for name, archive, verdict in zip(args.names, args.archives, args.verdicts)}
    replicas = replicas_by_search(args.replicas, dict(zip(args.names, (a.parent for a in args.archives))))
    control = {seed_of(path, args.first_seed): read_json(path) for path in args.control}
    table, sentence = baselines_table(searches, replicas, control, args.kl_penalty, args.first_seed)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.csv, index=False)
    write_text(args.markdown, markdown(table, sentence))
    log.info("%s", sentence)


if __name__ == "__main__":
    main()
