"""Stage: the proposals of one generation.

Generation 0 is the seed archive: the library's baseline objectives, proposed verbatim so they are trained and
evaluated for real like every later candidate. Generations 1..G ask the configured proposer backend, which reads
the archive of the generation before.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .cli import json_option, setup_logging
from .io import read_jsonl, sha256_text, write_json
from .objectives import LIBRARY, function_name, library_source

log = logging.getLogger(__name__)

BACKENDS = ("evolution", "replay")


def seed_proposals(objective_names: list[str]) -> list[dict]:
    from .proposers.evolution import LIBRARY_GENOMES

    proposals = []
    for k, name in enumerate(objective_names):
        code = library_source(name)
        proposals.append({
            "id": f"g0-k{k}", "generation": 0, "candidate": k, "name": function_name(code),
            "library_name": name, "thought": f"Seed archive: the library objective {name}.", "code": code,
            "genome": LIBRARY_GENOMES.get(name), "parents": [],
            "proposer": {"backend": "seed", "model": None, "temperature": None, "seed": None},
            "prompt_hash": None, "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0},
        })
    return proposals


def propose(generation: int, archive: list[dict], population: int, backend: str, seed: int,
            options: dict) -> list[dict]:
    if backend == "evolution":
        from .proposers.evolution import EvolutionOptions, propose_evolution

        return propose_evolution(archive, generation, population, seed, EvolutionOptions(**options))
    if backend == "replay":
        from .proposers.replay import propose_replay

        if "transcript" not in options:
            raise ValueError("discovery.proposer.options.transcript: the replay backend needs a transcript file")
        return propose_replay(options["transcript"], generation)
    raise ValueError(f"discovery.proposer.backend: {backend!r} is not one of {', '.join(BACKENDS)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generation", type=int, required=True)
    parser.add_argument("--archive", type=Path, default=None, help="archive of the previous generation")
    parser.add_argument("--seed-objectives", nargs="*", default=[], help="generation 0: library objective names")
    parser.add_argument("--population", type=int, default=0)
    parser.add_argument("--backend", default="evolution")
    parser.add_argument("--backend-options", type=json_option, default={})
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()

    if args.generation == 0:
        unknown = [n for n in args.seed_objectives if n not in LIBRARY]
        if unknown:
            parser.error(f"discovery.seed_objectives: unknown {unknown}; the library holds {', '.join(LIBRARY)}")
        proposals = seed_proposals(args.seed_objectives)
    else:
        if args.archive is None:
            parser.error(f"generation {args.generation} needs --archive (the archive of generation {args.generation - 1})")
        proposals = propose(args.generation, read_jsonl(args.archive), args.population, args.backend, args.seed,
                            args.backend_options)
    for proposal in proposals:
        proposal.setdefault("code_hash", sha256_text(proposal.get("code") or ""))
    write_json(args.output, proposals)
    for proposal in proposals:
        log.info("%s %s: %s", proposal["id"], proposal["name"], proposal["thought"])


if __name__ == "__main__":
    main()
