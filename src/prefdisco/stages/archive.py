"""Stage: archive(g), every record up to generation g, readable by a person and by the next generation's proposer.

One record per proposal: the proposal itself, its validation verdict, and its training and evaluation results,
with a single status (prefdisco.records.STATUSES): ok, invalid, duplicate, train_failed or eval_failed.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..cli import setup_logging
from ..intervals import attach_intervals, seed_of
from ..io import provenance, read_json, read_jsonl, write_jsonl
from ..records import (DUPLICATE, INVALID, PROPOSAL_KEYS, VALIDATION_KEYS, ArchiveRecord, goes_to_training,
                      is_evaluated)

log = logging.getLogger(__name__)

def generation_records(proposals: list[dict], validation: list[dict], trainings: dict[str, dict],
                       evaluations: dict[str, dict], earlier: list[dict]) -> list[ArchiveRecord]:
    """Merge one generation's proposals with their validation, training and evaluation results."""
    verdicts = {v["id"]: v for v in validation}
    fitness_of = {r["id"]: r.get("fitness") for r in earlier}
    records = []
    for proposal in proposals:
        verdict = verdicts.get(proposal["id"])
        if verdict is None:
            raise ValueError(f"candidate {proposal['id']} has no validation record")
        record = {key: proposal.get(key) for key in PROPOSAL_KEYS}
        record.update(fingerprint=verdict.get("fingerprint"), duplicate_of=verdict.get("duplicate_of"),
                      validation={k: verdict.get(k) for k in VALIDATION_KEYS},
                      metrics={}, training={}, fitness=None, error=None)
        if not verdict["valid"]:
            record.update(status=INVALID, error=verdict["error"])
        elif not goes_to_training(verdict):
            original = verdict["duplicate_of"]
            fitness_of.update({r["id"]: r.get("fitness") for r in records})
            record.update(status=DUPLICATE,
                          error=f"behaves like {original} (same fingerprint; fitness {fitness_of.get(original)}): not trained again")
        else:
            evaluation = evaluations.get(proposal["id"])
            training = trainings.get(proposal["id"])
            if evaluation is None or training is None:
                raise ValueError(f"valid candidate {proposal['id']} has no training or evaluation result")
            record.update(status=evaluation["status"], fitness=evaluation["fitness"],
                          metrics=evaluation.get("metrics", {}), error=evaluation.get("error"),
                          training=training.get("metrics", {}),
                          wall_seconds=training.get("wall_seconds", 0.0) + evaluation.get("wall_seconds", 0.0))
        records.append(record)
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--previous", type=Path, default=None, help="archive of generation g-1 (omit for g = 0)")
    parser.add_argument("--proposals", type=Path, required=True)
    parser.add_argument("--validation", type=Path, required=True)
    parser.add_argument("--trainings", type=Path, nargs="*", default=[])
    parser.add_argument("--evaluations", type=Path, nargs="*", default=[])
    parser.add_argument("--output", type=Path, required=True)
    # noise-aware fitness (prefdisco.intervals): one-seed intervals and the paired difference to the control
    parser.add_argument("--control", type=Path, nargs="*", default=[], help="the control's eval.json, per seed")
    parser.add_argument("--control-name", default="dpo")
    parser.add_argument("--kl-penalty", type=float, default=0.0)
    parser.add_argument("--first-seed", type=int, default=0, help="training seed of a candidate's first unit")
    args = parser.parse_args(argv)
    setup_logging()

    earlier = read_jsonl(args.previous) if args.previous else []
    trainings = {r["id"]: (r, path) for path, r in zip(args.trainings, map(read_json, args.trainings))}
    evaluations = {r["id"]: (r, path) for path, r in zip(args.evaluations, map(read_json, args.evaluations))}
    records = generation_records(read_json(args.proposals), read_json(args.validation),
                                 {k: r for k, (r, _) in trainings.items()}, {k: r for k, (r, _) in evaluations.items()},
                                 earlier)
    shared = provenance(args.previous, args.proposals, args.validation, *args.control)
    for record in records:  # its own training and evaluation, besides what the whole generation was built from
        record["inputs"] = {**shared, **provenance(trainings.get(record["id"], (None, None))[1],
                                                   evaluations.get(record["id"], (None, None))[1])}
    if args.control:
        control = {seed_of(path, args.first_seed): read_json(path) for path in args.control}
        attach_intervals(records, control, args.kl_penalty, args.control_name, args.first_seed)
    write_jsonl(args.output, earlier + records)
    ok = [r for r in records if is_evaluated(r)]
    best = max(ok, key=lambda r: r["fitness"], default=None)
    log.info("archive: %d new records (%d evaluated); best new: %s", len(records), len(ok),
             f"{best['id']} {best['name']} fitness {best['fitness']:.4f}" if best else "none")


if __name__ == "__main__":
    main()
