"""Stage: the objective spec (``objective.json``) that a training unit consumes.

Discovery candidates take theirs from the generation's proposals once validation has passed them; fixed
experiments (objective x beta x seed grids) take a library objective, from the family's library (a classification
objective has no beta). Both then share one train -> evaluate chain.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..cli import setup_logging
from ..io import provenance, read_json, write_json
from ..families import DEFAULT_FAMILY, get_family
from ..objectives import function_name
from ..records import ObjectiveSpec, goes_to_training

log = logging.getLogger(__name__)


def candidate_spec(proposals: list[dict], validation: list[dict], candidate_id: str) -> ObjectiveSpec:
    proposal = next((p for p in proposals if p["id"] == candidate_id), None)
    verdict = next((v for v in validation if v["id"] == candidate_id), None)
    if proposal is None or verdict is None:
        raise KeyError(f"candidate {candidate_id} is not among this generation's proposals and validations")
    if not goes_to_training(verdict):
        raise ValueError(f"candidate {candidate_id} was not passed to training by validation")
    return {"id": candidate_id, "name": proposal["name"], "code": proposal["code"], "training_overrides": {}}


def experiment_spec(unit_id: str, objective: str, beta: float | None, seed: int,
                    family: str = DEFAULT_FAMILY) -> ObjectiveSpec:
    code = get_family(family).library_source(objective)
    overrides = {"beta": beta, "seed": seed} if beta is not None else {"seed": seed}
    return {"id": unit_id, "name": function_name(code), "library_name": objective, "code": code,
            "training_overrides": overrides}


def replica_spec(spec: dict, seed: int) -> dict:
    """A promoted candidate's objective, trained again at another seed (the cascade)."""
    return {**spec, "id": f"{spec['id']}-s{seed}", "training_overrides": {**spec.get("training_overrides", {}),
                                                                           "seed": seed}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    cand = sub.add_parser("candidate")
    cand.add_argument("--proposals", type=Path, required=True)
    cand.add_argument("--validation", type=Path, required=True)
    cand.add_argument("--id", required=True)
    exp = sub.add_parser("experiment")
    exp.add_argument("--id", required=True)
    exp.add_argument("--objective", required=True)
    exp.add_argument("--beta", type=float, default=None, help="preference objectives; a classification one has none")
    exp.add_argument("--family", default=DEFAULT_FAMILY)
    exp.add_argument("--seed", type=int, required=True)
    rep = sub.add_parser("replica")
    rep.add_argument("--objective", type=Path, required=True, help="objective.json of the candidate's first unit")
    rep.add_argument("--seed", type=int, required=True)
    for p in (cand, exp, rep):
        p.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    if args.kind == "candidate":
        spec = candidate_spec(read_json(args.proposals), read_json(args.validation), args.id)
        spec["inputs"] = provenance(args.proposals, args.validation)
    elif args.kind == "replica":
        spec = replica_spec(read_json(args.objective), args.seed)
    else:
        if args.beta is None and args.family == "preference":
            parser.error("--beta: a preference objective is trained at a beta")
        spec = experiment_spec(args.id, args.objective, args.beta, args.seed, args.family)
    write_json(args.output, spec)


if __name__ == "__main__":
    main()
