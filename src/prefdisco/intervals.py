"""Noise-aware fitness of evaluation records: their per-prompt values, intervals, the difference to the control, and
the score that ranks them.

Every stage and figure that ranks or compares objectives reads records through here, so that they agree: the
archive attaches one-seed intervals (``intervals``) to each evaluated record, the cascade re-estimates them from
every seed, the baselines compare searches with them, and the summary, the figures and the classification stages
rank by :func:`ranking_score`. The statistics on the numbers themselves are :mod:`prefdisco.statistics`.

A unit's training seed is in its path (``.../seed<s>/eval.json``); a candidate's first unit (``gen<g>/cand<k>``)
was trained at the run's first training seed.

Both objective families go through the same functions. A preference unit's values are per held-out prompt (fitness,
reward, KL); a classification unit's are per validation example (fitness: correct or not, so its mean is the
validation accuracy), and its records say so (``over``: "validation examples", ``examples``: how many).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping

from .records import finite
from .statistics import METHOD, estimate, paired_difference, seed_variance_of

QUANTITIES = ("fitness", "reward", "kl")
# What a unit's values are crossed with training seeds over: held-out prompts (preference), or validation examples
# (classification: fitness only, there is no reward or KL).
PROMPTS = "held-out prompts"
EXAMPLES = "validation examples"
EXAMPLE_METHOD = METHOD.replace(PROMPTS, EXAMPLES)


# --- per-prompt values of an evaluation record ----------------------------------------------------------------------


def per_prompt(record: Mapping, quantity: str, kl_penalty: float = 0.0) -> list[float | None] | None:
    """One value per held-out prompt of an evaluation record: ``reward``, ``kl`` or ``fitness``.

    Fitness per prompt is reward - kl_penalty * KL of that prompt. When reward and KL were measured on different
    prompts (MT-Bench questions and held-out conversations), the KL enters as its mean. None when the record has
    no per-prompt values (an older run, or a failed unit).

    A classification unit's "prompts" are its validation examples (:func:`per_example`): fitness only.
    """
    if is_per_example(record):
        return per_example(record) if quantity == "fitness" else None
    values = (record.get("metrics") or {}).get("per_prompt") or {}
    if quantity != "fitness":
        return values.get(quantity)
    reward, kl = values.get("reward"), values.get("kl")
    if reward is None:
        return None
    if kl is None or not kl_penalty:
        return list(reward)
    if len(kl) != len(reward):
        mean_kl = record["metrics"]["kl"]
        return [None if r is None else r - kl_penalty * mean_kl for r in reward]
    return [None if r is None or k is None else r - kl_penalty * k for r, k in zip(reward, kl)]


def is_per_example(record: Mapping) -> bool:
    """A classification unit's evaluation: its fitness (validation accuracy) is a mean over validation examples."""
    return "per_example" in (record.get("metrics") or {})


def per_example(record: Mapping) -> list[float]:
    """A classification unit's correctness (1 or 0) per validation example, in the split's order: the mean is its
    fitness, and every unit is scored on the same examples, so two units pair example by example."""
    return [float(v) for v in record["metrics"]["per_example"]["val_correct"]]


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


def complete_columns(*tables: Mapping[int, list]) -> list[int]:
    """Prompts that every seed of every table has a value for (an unparsed MT-Bench judgment has none)."""
    rows = [row for table in tables for row in table.values()]
    width = min(len(row) for row in rows)
    return [p for p in range(width) if all(row[p] is not None and math.isfinite(row[p]) for row in rows)]


def select_columns(table: Mapping[int, list], columns: list[int]) -> dict[int, list[float]]:
    """Each seed's values at ``columns`` (from :func:`complete_columns`), as floats."""
    return {seed: [float(row[p]) for p in columns] for seed, row in table.items()}


# --- intervals of a unit and of a generation's records --------------------------------------------------------------


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
        columns = complete_columns(mine, theirs) if theirs else complete_columns(mine)
        if not columns:
            return None
        mine, theirs = select_columns(mine, columns), select_columns(theirs, columns)
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


# --- reading and ranking a record by its intervals ------------------------------------------------------------------


def interval(record: Mapping, key: str) -> Mapping[str, Any]:
    """An interval of the record (``fitness``, ``reward``, ``kl``, ``vs_control``), or {} when it has none."""
    return ((record.get("intervals") or {}).get(key)) or {}


def lower_bound(record: Mapping) -> float | None:
    """The interval-aware score the search ranks by: the lower 95% bound of fitness (None when unknown)."""
    return finite(interval(record, "fitness").get("low"))


def ranking_score(record: Mapping) -> float:
    """What ranks evaluated records: the lower 95% bound of fitness where known (a lucky single seed does not top
    the table), else the fitness itself (archives written before intervals existed)."""
    low = lower_bound(record)
    return low if low is not None else float(record["fitness"])
