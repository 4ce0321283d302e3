"""Tests for random search, the search-quality baseline (prefdisco.proposers.random_search)."""

from __future__ import annotations

import json

import pytest
import torch
from test_evolution import assert_sandbox_friendly, call, load_function, random_logps

from prefdisco.objectives import library_source
from prefdisco.stages.propose import main as propose_main
from prefdisco.stages.propose import propose
from prefdisco.proposers.evolution import (
    BINARY_OPS,
    UNARY_OPS,
    EvolutionOptions,
    behaviour_signature,
    degeneracy_reason,
    evaluate_genome,
    genome_depth,
    propose_evolution,
    validate_genome,
)
from prefdisco.proposers.random_search import propose_random


class Unreadable(dict):
    """An archive record whose scores raise when read: proof that a proposer never looks at them."""

    SCORES = ("fitness", "intervals", "metrics", "status")

    def __getitem__(self, key):
        if key in self.SCORES:
            raise AssertionError(f"random search read {key!r}")
        return super().__getitem__(key)

    def get(self, key, default=None):
        if key in self.SCORES:
            raise AssertionError(f"random search read {key!r}")
        return super().get(key, default)


def archive(fitness: list[float]) -> list[dict]:
    records = []
    for k, (name, value) in enumerate(zip(("dpo", "slic", "cell", "lrml"), fitness)):
        records.append({"id": f"g0-k{k}", "generation": 0, "name": name, "code": library_source(name),
                        "library_name": name, "status": "ok", "fitness": value,
                        "intervals": {"fitness": {"low": value - 0.1, "mean": value, "high": value + 0.1}}})
    return records


def ops(genome) -> set[str]:
    if genome[0] in ("x", "const"):
        return {genome[0]}
    children = [genome[1]] if genome[0] == "div" else genome[1:]
    return {genome[0]}.union(*(ops(child) for child in children))


def test_draws_usable_losses_from_the_evolution_space():
    options = EvolutionOptions(max_depth=4)
    proposals = propose_random(archive([0.1, 0.2, 0.3, 0.4]), 1, 12, seed=3, options=options)
    assert [p["id"] for p in proposals] == [f"g1-k{k}" for k in range(12)]
    generator = torch.Generator().manual_seed(0)
    for p in proposals:
        genome = validate_genome(p["genome"])
        assert genome_depth(genome) <= 4 and degeneracy_reason(genome, 4) is None
        assert ops(genome) <= {"x", "const", "div", "blend", *UNARY_OPS, *BINARY_OPS}
        assert p["parents"] == [] and p["proposer"] == {"backend": "random", "model": None, "temperature": None,
                                                        "seed": 3}
        assert_sandbox_friendly(p["code"])
        function, logps = load_function(p["code"]), random_logps(generator)
        x = 0.1 * ((logps[0] - logps[1]) - (logps[2] - logps[3]))
        torch.testing.assert_close(call(function, 0.1, *logps), evaluate_genome(genome, x))
    signatures = [behaviour_signature(p["genome"]) for p in proposals]
    library = {behaviour_signature(validate_genome(g)) for g in
               (["neg", ["logsigmoid", ["x"]]], ["relu", ["sub", ["const", 1.0], ["x"]]])}
    assert len(set(signatures)) == len(signatures) and not set(signatures) & library


def test_seeded_and_deterministic():
    records = archive([0.1, 0.2, 0.3, 0.4])
    first = propose_random(records, 2, 5, seed=0)
    assert propose_random(records, 2, 5, seed=0) == first
    assert [p["genome"] for p in propose_random(records, 2, 5, seed=1)] != [p["genome"] for p in first]
    assert [p["genome"] for p in propose_random(records, 3, 5, seed=0)] != [p["genome"] for p in first]
    # not the evolutionary proposer's draws at the same seed and generation
    assert [p["genome"] for p in propose_evolution(records, 2, 5, seed=0)] != [p["genome"] for p in first]


def test_never_reads_fitness():
    ranked = propose_random(archive([0.1, 0.2, 0.3, 0.4]), 1, 6, seed=5)
    reversed_scores = propose_random(archive([0.4, 0.3, 0.2, -1.0]), 1, 6, seed=5)
    unreadable = propose_random([Unreadable(r) for r in archive([0.1, 0.2, 0.3, 0.4])], 1, 6, seed=5)
    assert ranked == reversed_scores == unreadable
    # the evolutionary proposer, by contrast, breeds from the scores
    with pytest.raises(AssertionError, match="random search read"):
        propose_evolution([Unreadable(r) for r in archive([0.1, 0.2, 0.3, 0.4])], 1, 6, seed=5)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="population"):
        propose_random([], 1, -1, seed=0)
    with pytest.raises(ValueError, match="max_depth"):
        propose_random([], 1, 2, seed=0, options=EvolutionOptions(max_depth=1))
    with pytest.raises(ValueError, match="discovery.proposer.options: unknown key"):
        propose(1, [], 2, "random", 0, {"temperature": 0.7})


def test_propose_stage_writes_random_proposals(tmp_path):
    source = tmp_path / "archive.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in archive([0.1, 0.2, 0.3, 0.4])))
    output = tmp_path / "proposals.json"
    propose_main(["--generation", "1", "--archive", str(source), "--population", "3", "--backend", "random",
                  "--backend-options", '{"max_depth": 4}', "--seed", "0", "--output", str(output)])
    proposals = json.loads(output.read_text())
    assert [p["name"] for p in proposals] == ["random_g1_k0", "random_g1_k1", "random_g1_k2"]
    assert proposals == [{**p, "code_hash": q["code_hash"], "inputs": q["inputs"]}
                         for p, q in zip(propose_random(archive([0.1, 0.2, 0.3, 0.4]), 1, 3, 0,
                                                        EvolutionOptions(max_depth=4)), proposals)]
    assert all(p["inputs"] for p in proposals)
