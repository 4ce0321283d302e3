"""Random search: the search-quality baseline of the evolutionary proposer (config-free, no LLM).

Each proposal is a genome drawn at random from the evolution backend's expression space (the same operators,
depth limit and behavioural checks; :func:`prefdisco.proposers.evolution.random_genome`), with no selection: the
archive is read for genomes only, so that a draw that behaves like an archived or already-drawn loss is drawn
again, exactly as the evolutionary proposer avoids duplicates. Fitness, intervals and statuses are never read, so
the search cannot learn from the scores: what is left is chance, at the same budget.
"""

from __future__ import annotations

import logging
import random

from ..records import proposal
from .evolution import (
    PREFERENCE_SPACE,
    EvolutionOptions,
    ExpressionSpace,
    Genome,
    _single_thread,
    behaviour_signature,
    degeneracy_reason,
    genome_to_string,
    random_genome,
    validate_genome,
)

logger = logging.getLogger(__name__)

# Keeps random search's draws apart from the evolutionary proposer's at the same run seed and generation.
STREAM = 7919


def archive_genomes(archive: list[dict], space: ExpressionSpace) -> list[Genome]:
    """The genomes in an archive (a record's own, else its library objective's), whatever its status or score."""
    genomes = []
    for record in archive:
        genome = record.get("genome")
        if genome is None:
            genome = space.library_genomes.get(record.get("library_name"))
        if genome is None:
            continue
        try:
            genomes.append(validate_genome(genome))
        except ValueError as error:
            logger.warning("archive record %s has a malformed genome, ignored: %s", record.get("id"), error)
    return genomes


def propose_random(archive: list[dict], generation: int, population: int, seed: int,
                   options: EvolutionOptions | None = None, space: ExpressionSpace | None = None) -> list[dict]:
    """``population`` objectives drawn at random from ``space``'s genomes of depth at most ``options.max_depth``;
    deterministic in (seed, generation) and in the archive's genomes."""
    space = space or PREFERENCE_SPACE
    options = options or EvolutionOptions()
    if population < 0:
        raise ValueError(f"population must be non-negative, got {population}")
    if options.max_depth < 2:
        raise ValueError("max_depth must be at least 2: no depth-1 genome is a preference loss")
    rng = random.Random((seed * 1000003 + generation) * 31 + STREAM)
    with _single_thread():
        seen = {behaviour_signature(g, space) for g in archive_genomes(archive, space)
                if degeneracy_reason(g, space=space) is None}
        proposals = []
        for k in range(population):
            genome, draws = _draw(rng, options, seen, space)
            seen.add(behaviour_signature(genome, space))
            name = f"random_g{generation}_k{k}"
            expression = genome_to_string(genome)
            proposals.append(proposal(
                generation, k, name=name,
                thought=f"Random search: drew {expression} from the expression space (draw {draws}; "
                        f"no archive fitness was read).",
                code=space.render(genome, name, f"random search: {expression}"), genome=genome, parents=[],
                proposer={"backend": "random", "model": None, "temperature": None, "seed": seed}))
    return proposals


def _draw(rng: random.Random, options: EvolutionOptions, seen: set, space: ExpressionSpace) -> tuple[Genome, int]:
    """The first random genome that is a usable loss and new in behaviour, and how many draws it took."""
    reasons: dict[str, int] = {}
    for draw in range(1, max(1, options.max_tries) * 10 + 1):
        genome = random_genome(rng, options.max_depth)
        reason = degeneracy_reason(genome, options.max_depth, space)
        if reason is None and behaviour_signature(genome, space) in seen:
            reason = "behaves like an archived or already drawn loss"
        if reason is None:
            return genome, draw
        reasons[reason] = reasons.get(reason, 0) + 1
    raise RuntimeError(f"random search drew no usable new genome in {draw} draws; rejections: {reasons}")
