"""Tests for the offline evolutionary proposer (prefdisco.proposers.evolution)."""

from __future__ import annotations

import ast
import json
import math
import random
import statistics
import time
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from prefdisco.objectives import CONTRACT_ARGUMENTS, library_source
from prefdisco.proposers.evolution import (
    LIBRARY_GENOMES,
    EvolutionOptions,
    behaviour_signature,
    degeneracy_reason,
    evaluate_genome,
    genome_depth,
    genome_to_string,
    propose_evolution,
    proxy_fitness,
    random_genome,
    render_genome,
    run_proxy_search,
    validate_genome,
)

FORBIDDEN_CALLS = {"getattr", "setattr", "delattr", "eval", "exec", "compile", "open", "globals", "locals", "vars"}
FORBIDDEN_ATTRIBUTES = {"ops", "hub", "save", "load", "utils"}


def load_function(code: str):
    """Execute contract code (our own rendering or trusted library text) with the contract's globals."""
    namespace = {"torch": torch, "F": F, "math": math}
    exec(code, namespace)  # noqa: S102 - trusted text in a test
    functions = [node.name for node in ast.parse(code).body if isinstance(node, ast.FunctionDef)]
    assert len(functions) == 1
    return namespace[functions[0]]


def call(function, beta: float, pc, pr, rc, rr) -> torch.Tensor:
    return function(SimpleNamespace(beta=beta), pc, pr, rc, rr)


def random_logps(generator: torch.Generator, batch: int = 256) -> list[torch.Tensor]:
    # Log-ratio margins of a few units: beta * rho stays well inside [-20, 20] for beta <= 1, away from exp's clamp.
    return [-50 + 3 * torch.randn(batch, generator=generator) for _ in range(4)]


def assert_sandbox_friendly(code: str) -> None:
    """The rules the workflow's sandbox enforces, checked on the syntax tree."""
    tree = ast.parse(code)
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert len(tree.body) == 1 and len(functions) == 1
    assert tuple(arg.arg for arg in functions[0].args.args) == CONTRACT_ARGUMENTS
    assigned = set()
    for node in ast.walk(tree):
        assert not isinstance(
            node, (ast.Try, ast.With, ast.ClassDef, ast.Global, ast.Nonlocal, ast.Import, ast.ImportFrom, ast.Lambda)
        ), ast.dump(node)
        if isinstance(node, ast.Name):
            assert not node.id.startswith("_") and node.id not in FORBIDDEN_CALLS, node.id
            if isinstance(node.ctx, ast.Store):
                assigned.add(node.id)
        if isinstance(node, ast.Attribute):
            assert not node.attr.startswith("_") and node.attr not in FORBIDDEN_ATTRIBUTES, node.attr
            assert not isinstance(node.ctx, ast.Store), "attribute assignment"
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert loaded <= {"torch", "F", "math", *CONTRACT_ARGUMENTS, *assigned}, loaded


def ok_record(record_id: str, genome, fitness: float, generation: int = 0) -> dict:
    return {"id": record_id, "generation": generation, "name": record_id.replace("-", "_"), "code": "",
            "status": "ok", "fitness": fitness, "genome": genome}


def seeded_archive() -> list[dict]:
    archive = []
    for k, name in enumerate(("dpo", "slic", "cell", "lrml")):
        archive.append({"id": f"g0-k{k}", "generation": 0, "name": name, "code": library_source(name),
                        "status": "ok", "fitness": 0.1 * (k + 1), "library_name": name})
    return archive


# ------------------------------------------------------------------------------------------------------------
# Genomes, rendering and library equivalence


@pytest.mark.parametrize("name", sorted(LIBRARY_GENOMES))
def test_library_genomes_match_library_source(name):
    library = load_function(library_source(name))
    rendered = load_function(render_genome(LIBRARY_GENOMES[name], f"rendered_{name}"))
    generator = torch.Generator().manual_seed(0)
    for beta in (0.01, 0.05, 0.1, 0.5, 1.0):
        logps = random_logps(generator)
        expected = call(library, beta, *logps)
        actual = call(rendered, beta, *logps)
        assert actual.shape == expected.shape == (256,)
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_library_genomes_are_valid_and_distinct():
    signatures = set()
    for name, genome in LIBRARY_GENOMES.items():
        assert degeneracy_reason(genome) is None, name
        signatures.add(behaviour_signature(genome))
    assert len(signatures) == len(LIBRARY_GENOMES)
    assert genome_to_string(LIBRARY_GENOMES["lrml"]) == "blend(div(x, 0.05), exp(neg(x)), neg(logsigmoid(x)))"


def test_rendered_code_matches_in_process_evaluation():
    rng = random.Random(3)
    x = torch.linspace(-20, 20, 401)
    checked = 0
    while checked < 60:
        genome = random_genome(rng, 5)
        if degeneracy_reason(genome, 5) is not None:
            continue
        code = render_genome(genome, "candidate")
        assert_sandbox_friendly(code)
        # With policy_chosen = x / beta and everything else zero, the code's margin x equals ours.
        beta = 0.1
        zeros = torch.zeros_like(x)
        rendered = call(load_function(code), beta, x / beta, zeros, zeros, zeros)
        torch.testing.assert_close(rendered, evaluate_genome(genome, x), rtol=1e-4, atol=1e-5)
        checked += 1


def test_exp_is_clamped_in_rendered_code():
    code = render_genome(LIBRARY_GENOMES["cell"], "cell")
    assert "torch.exp(torch.clamp(-x, max=30.0))" in code
    losses = call(load_function(code), 1.0, *[torch.tensor([-1000.0, 0.0])] + [torch.zeros(2)] * 3)
    assert torch.isfinite(losses).all()


def test_degeneracy_checks():
    assert degeneracy_reason(["x"]) == "loss does not decrease on average as the margin grows"
    assert "zero almost everywhere" in degeneracy_reason(["relu", ["sub", ["const", -30.0], ["x"]]])
    overflow = ["square", ["square", ["square", ["exp", ["neg", ["x"]]]]]]
    assert "non-finite" in degeneracy_reason(overflow)
    assert degeneracy_reason(["const", 1.0]) == "does not depend on x"
    assert "exceeds" in degeneracy_reason(LIBRARY_GENOMES["lrml"], max_depth=2)
    assert degeneracy_reason(["nope", ["x"]]).startswith("malformed")


def test_signature_ignores_scale_and_offset():
    dpo = LIBRARY_GENOMES["dpo"]
    assert behaviour_signature(["add", ["mul", ["const", 3.0], dpo], ["const", 2.0]]) == behaviour_signature(dpo)
    assert behaviour_signature(["relu", ["sub", ["const", 0.5], ["x"]]]) != behaviour_signature(LIBRARY_GENOMES["slic"])


def test_validate_genome_rejects_malformed():
    for bad in (["div", ["x"], 0], ["const", "a"], ["add", ["x"]], ["blend", ["x"], ["x"]], "x", []):
        with pytest.raises(ValueError):
            validate_genome(bad)


# ------------------------------------------------------------------------------------------------------------
# The proposer


def test_proposals_follow_the_contract_and_record_format():
    proposals = propose_evolution(seeded_archive(), generation=1, population=8, seed=7)
    assert [p["id"] for p in proposals] == [f"g1-k{k}" for k in range(8)]
    ids = {r["id"] for r in seeded_archive()}
    for k, proposal in enumerate(proposals):
        assert proposal["candidate"] == k and proposal["generation"] == 1
        assert proposal["name"].isidentifier()
        assert_sandbox_friendly(proposal["code"])
        assert f"def {proposal['name']}(" in proposal["code"]
        assert proposal["thought"] and proposal["thought"].endswith(".")
        assert proposal["proposer"] == {"backend": "evolution", "model": None, "temperature": None, "seed": 7}
        assert proposal["prompt_hash"] is None
        assert proposal["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
        assert set(proposal["parents"]) <= ids
        assert degeneracy_reason(proposal["genome"], EvolutionOptions().max_depth) is None
        json.dumps(proposal)  # JSON-ready as a whole


def test_deterministic_for_same_arguments():
    archive = seeded_archive()
    first = propose_evolution(archive, 2, 6, seed=11)
    second = propose_evolution(json.loads(json.dumps(archive)), 2, 6, seed=11)
    assert first == second
    assert [p["genome"] for p in propose_evolution(archive, 2, 6, seed=12)] != [p["genome"] for p in first]
    assert [p["genome"] for p in propose_evolution(archive, 3, 6, seed=11)] != [p["genome"] for p in first]


def test_offspring_differ_from_parents_archive_and_each_other():
    archive = seeded_archive()
    by_id = {r["id"]: LIBRARY_GENOMES[r["library_name"]] for r in archive}
    proposals = propose_evolution(archive, 1, 12, seed=5)
    archived = {behaviour_signature(g) for g in by_id.values()}
    signatures = [behaviour_signature(p["genome"]) for p in proposals]
    assert len(set(signatures)) == len(signatures)
    assert not archived & set(signatures)
    for proposal in proposals:
        for parent in proposal["parents"]:
            assert genome_to_string(proposal["genome"]) != genome_to_string(by_id[parent])


def test_genome_json_round_trip():
    for proposal in propose_evolution(seeded_archive(), 1, 8, seed=1):
        restored = json.loads(json.dumps(proposal["genome"]))
        assert restored == proposal["genome"]
        assert validate_genome(restored) == restored
        # The proposal's code carries one comment line more than a plain rendering.
        code_lines = [line for line in proposal["code"].splitlines() if not line.lstrip().startswith("#")]
        assert "\n".join(code_lines) + "\n" == render_genome(restored, proposal["name"])


def test_record_without_genome_is_not_a_parent():
    archive = [
        {"id": "g0-k0", "generation": 0, "name": "llm_loss", "code": "def llm_loss(...): ...", "status": "ok",
         "fitness": 9.9},
        {"id": "g0-k1", "generation": 0, "name": "llm_loss2", "code": "", "status": "ok", "fitness": 9.0,
         "genome": None},
    ]
    proposals = propose_evolution(archive, 1, 6, seed=0)
    parents = {parent for p in proposals for parent in p["parents"]}
    assert parents <= {"library:dpo", "library:slic"} and parents


def test_only_ok_records_with_fitness_are_parents():
    archive = seeded_archive()
    archive.append({**ok_record("g1-k0", LIBRARY_GENOMES["dpo"], 5.0), "status": "train_failed"})
    archive.append(ok_record("g1-k1", ["exp", ["neg", ["x"]]], None))
    archive.append(ok_record("g1-k2", ["exp", ["neg", ["x"]]], float("nan")))
    parents = {parent for p in propose_evolution(archive, 2, 10, seed=3) for parent in p["parents"]}
    assert parents <= {"g0-k0", "g0-k1", "g0-k2", "g0-k3"}


def test_empty_archive_starts_from_dpo_and_slic():
    proposals = propose_evolution([], 0, 8, seed=0)
    assert len(proposals) == 8
    assert {parent for p in proposals for parent in p["parents"]} <= {"library:dpo", "library:slic"}


def test_population_of_eight_is_fast():
    archive = seeded_archive()
    for generation in (1, 2):
        for proposal in propose_evolution(archive, generation, 8, seed=0):
            archive.append(ok_record(proposal["id"], proposal["genome"], 0.5, generation))
    start = time.perf_counter()
    proposals = propose_evolution(archive, 3, 8, seed=0)
    assert len(proposals) == 8
    assert time.perf_counter() - start < 2.0


def test_max_depth_is_respected_and_validated():
    options = EvolutionOptions(max_depth=3)
    for proposal in propose_evolution(seeded_archive(), 1, 8, seed=2, options=options):
        assert genome_depth(proposal["genome"]) <= 3
    with pytest.raises(ValueError):
        propose_evolution([], 0, 1, seed=0, options=EvolutionOptions(max_depth=1))


def test_constant_mutation_thought_names_the_change():
    archive = [ok_record("g0-k3", LIBRARY_GENOMES["lrml"], 0.41)]
    options = EvolutionOptions(mutation_rate=1.0, crossover_rate=0.0)
    thoughts = [p["thought"] for p in propose_evolution(archive, 1, 30, seed=4, options=options)]
    assert any("Mutated the constant 0.05 -> " in t and "blend weight of g0-k3 (fitness 0.41)" in t for t in thoughts)


# ------------------------------------------------------------------------------------------------------------
# Proxy fitness: evolution against random search at the same budget


def test_proxy_fitness_is_deterministic_and_discriminates():
    dpo, slic = LIBRARY_GENOMES["dpo"], LIBRARY_GENOMES["slic"]
    assert proxy_fitness(dpo) == proxy_fitness(dpo)
    small_margin_hinge = ["relu", ["sub", ["const", 0.5], ["x"]]]
    # Few noisy pairs: DPO overfits, a hinge with a small margin regularises.
    assert proxy_fitness(small_margin_hinge) > proxy_fitness(slic) > proxy_fitness(dpo)


def test_evolution_beats_random_search_on_proxy_fitness():
    seeds = range(4)
    best = {"evolution": [], "random": []}
    for method in best:
        for seed in seeds:
            archive = run_proxy_search(method, seed, generations=5, population=6)
            assert len(archive) == 30
            best[method].append(max(r["fitness"] for r in archive if r["fitness"] is not None))
    wins = sum(e > r for e, r in zip(best["evolution"], best["random"]))
    assert statistics.mean(best["evolution"]) > statistics.mean(best["random"]), best
    assert wins >= 3, best
