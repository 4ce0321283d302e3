"""Classification objectives in the sandbox: the contract's policy, property checks, fingerprints, duplicates,
the seed library, and the hostile corpus of tests/hostile re-signatured to (logits, targets)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from prefdisco.classification.checks import run_checks
from prefdisco.classification.objectives import LIBRARY, library_source
from prefdisco.families import get_family
from prefdisco.proposers.evolution import propose_evolution
from prefdisco.sandbox.static_policy import PolicyViolation, check_source
from prefdisco.sandbox.runner import SandboxLimits, validate_programs
from prefdisco.stages.validate import validate_proposals

HOSTILE_FILES = sorted((Path(__file__).parent / "hostile").glob("*.py"))
OLD_SIGNATURE = "(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps)"
# The old inputs become views of the logits, so an in-place change of one still changes an input; self.beta becomes
# a number, except where the program assigns to it (that attack must stay what it was; the policy refuses 'self'
# under this contract, which has none).
PREAMBLE = (
    "    policy_chosen_logps = logits[:, 0]\n"
    "    policy_rejected_logps = logits[:, 1]\n"
    "    reference_chosen_logps = logits[:, 2]\n"
    "    reference_rejected_logps = logits[:, 3]\n"
    "    beta = 0.1\n"
)
CLASSIFICATION = ("logits", "targets")


def resignature(code: str) -> str:
    """The same program under the classification contract (the hostile body unchanged after the preamble)."""
    lines = code.splitlines(keepends=True)
    out = []
    for line in lines:
        if line.startswith("def ") and OLD_SIGNATURE in line:
            out.append(line.replace(OLD_SIGNATURE, "(logits, targets)"))
            out.append(PREAMBLE)
        else:
            out.append(re.sub(r"self\.beta(?!\s*=(?!=))", "beta", line))
    return "".join(out)


def expected_message(path: Path) -> tuple[str, str]:
    text = path.read_text()
    layer = re.search(r"^# layer: (static|runtime)$", text, re.MULTILINE).group(1)
    expect = re.search(r"^# expect: (.+)$", text, re.MULTILINE).group(1)
    # The same failure, in this contract's words: the inputs are the logits, the extreme grid is +-1000 logits,
    # and the objective's own lines moved down by the preamble.
    for name in ("policy_chosen_logps", "policy_rejected_logps", "reference_chosen_logps", "reference_rejected_logps"):
        expect = expect.replace(f"'{name}'", "'logits'")
    expect = expect.replace("must stay finite for |beta*rho| up to 50", "must stay finite for logits up to +-1000")
    expect = expect.replace("must take exactly (self, policy_chosen_logps", "must take exactly (logits, targets)")
    expect = re.sub(r"line (\d+)", lambda m: f"line {int(m.group(1)) + PREAMBLE.count(chr(10))}", expect)
    return layer, expect


@pytest.fixture(scope="module")
def library_results() -> dict[str, dict]:
    results = validate_programs([(name, library_source(name)) for name in LIBRARY], beta=1.0, family="classification")
    return {r["id"]: r for r in results}


@pytest.fixture(scope="module")
def hostile_results(tmp_path_factory) -> dict[str, dict]:
    vm_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                 if line.startswith("VmSize:"))
    limits = SandboxLimits(cpu_seconds=1, memory_mb=max(2048, vm_kb // 1024 + 1024), wall_seconds=6)
    programs = [(path.stem, resignature(path.read_text())) for path in HOSTILE_FILES]
    return {r["id"]: r for r in validate_programs(programs, beta=1.0, limits=limits, family="classification")}


@pytest.mark.parametrize("name", LIBRARY)
def test_library_objective_passes_every_check_in_the_sandbox(library_results, name):
    record = library_results[name]
    assert record["valid"], record["error"]
    assert set(record["checks"].values()) == {"pass"}
    assert record["curve"]["classes"] == 10 and len(record["curve"]["loss"]) == 121
    # every seed rewards the right class: lower loss for a confident right prediction than a confident wrong one
    assert record["measurements"]["loss_confident_right"] < record["measurements"]["loss_confident_wrong"]


def test_library_fingerprints_are_pairwise_distinct(library_results):
    fingerprints = [library_results[name]["fingerprint"] for name in LIBRARY]
    assert len(set(fingerprints)) == len(LIBRARY)


def test_fingerprint_ignores_scale_and_constant_but_not_behaviour():
    base = run_checks(library_source("cross_entropy"))["fingerprint"]
    scaled = "def scaled(logits, targets):\n    return 3.0 * F.cross_entropy(logits, targets, reduction='none') + 1.0\n"
    by_hand = ("def by_hand(logits, targets):\n"
               "    return -F.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1)).squeeze(1)\n")
    assert run_checks(scaled)["fingerprint"] == base
    assert run_checks(by_hand)["fingerprint"] == base  # the same loss, written differently
    assert run_checks(library_source("label_smoothing"))["fingerprint"] != base


def test_duplicates_are_flagged_against_the_archive_and_the_batch():
    code = "def again(logits, targets):\n    return 2.0 * F.cross_entropy(logits, targets, reduction='none')\n"
    archive = [{"id": "g0-k0", "status": "ok", "fingerprint": run_checks(library_source("cross_entropy"))["fingerprint"]}]
    proposals = [{"id": "g1-k0", "code": code}, {"id": "g1-k1", "code": library_source("focal")},
                 {"id": "g1-k2", "code": library_source("focal").replace("def focal", "def focal_copy")}]
    records = validate_proposals(proposals, archive, 1.0, SandboxLimits(), family="classification")
    assert [r["duplicate_of"] for r in records] == ["g0-k0", None, "g1-k1"]


def test_the_contract_is_the_family_s():
    with pytest.raises(PolicyViolation, match=r"exactly \(logits, targets\)"):
        check_source(library_source("cross_entropy").replace("(logits, targets)", "(self, logits, targets)"),
                     CLASSIFICATION)
    # a preference objective is not a classification objective, and the other way round
    from prefdisco.objectives import library_source as preference_source

    with pytest.raises(PolicyViolation):
        check_source(preference_source("dpo"), CLASSIFICATION)
    with pytest.raises(PolicyViolation):
        check_source(library_source("focal"))
    result = validate_programs([("dpo", preference_source("dpo"))], beta=1.0, family="classification")[0]
    assert not result["valid"] and result["checks"]["static_policy"] == "fail"


@pytest.mark.parametrize("body, expect", [
    ("    return torch.log(F.softmax(logits, dim=-1)).gather(1, targets.unsqueeze(1)).squeeze(1).neg()\n",
     "must stay finite for logits up to +-1000"),
    ("    return F.cross_entropy(logits, targets, reduction='none').mean()\n", "returned a scalar"),
    ("    return -F.log_softmax(logits, dim=-1)\n", "one value per class"),
    ("    return (logits.argmax(dim=-1) != targets).float()\n", "no gradient flows"),
])
def test_checks_name_the_problem(body, expect):
    result = run_checks("def candidate(logits, targets):\n" + body)
    assert not result["valid"] and expect in result["error"], result["error"]


def test_hostile_corpus_is_all_here():
    assert len(HOSTILE_FILES) >= 30


@pytest.mark.parametrize("path", HOSTILE_FILES, ids=lambda p: p.stem)
def test_resignatured_hostile_program_is_rejected_with_its_reason(hostile_results, path):
    layer, expect = expected_message(path)
    code = resignature(path.read_text())
    record = hostile_results[path.stem]
    assert record["valid"] is False and record["fingerprint"] is None
    assert expect in record["error"], record["error"]
    failed = [name for name, status in record["checks"].items() if status == "fail"]
    assert len(failed) == 1, record["checks"]
    if layer == "static":
        assert failed == ["static_policy"]
    else:
        assert check_source(code, CLASSIFICATION) == "objective"  # the policy lets it through on purpose
        assert failed != ["static_policy"]


def test_evolution_proposes_valid_new_classification_losses():
    space = get_family("classification").expression_space
    proposals = propose_evolution([], 1, 4, seed=0, space=space)
    results = validate_programs([(p["id"], p["code"]) for p in proposals], beta=1.0, family="classification")
    assert all(r["valid"] for r in results), [r["error"] for r in results]
    assert all("(logits, targets)" in p["code"] for p in proposals)
    fingerprints = {r["fingerprint"] for r in results} | {run_checks(library_source(n))["fingerprint"]
                                                          for n in ("cross_entropy", "focal")}
    assert len(fingerprints) == 6  # new behaviour each, none a copy of its start genomes


def test_focal_genome_is_the_library_focal_loss():
    from prefdisco.proposers.evolution import evaluate_genome

    x = torch.linspace(-6.0, 0.0, 13)
    focal = evaluate_genome(get_family("classification").expression_space.library_genomes["focal"], x)
    assert torch.allclose(focal, -((1 - x.exp()) ** 2) * x)


def test_the_llm_prompt_describes_the_family_s_contract_with_the_paper_s_protocol():
    from prefdisco.proposers.prompts import build_messages

    family = get_family("classification")
    messages = build_messages([], 1, 0, [], system_prompt=family.system_prompt)
    system = messages[0]["content"]
    assert "def <your_function_name>(logits, targets):" in system and "There is no self." in system
    assert '{"thought": ' in system and "validation" in system
    assert "preference" not in system.lower()
    seeds = __import__("prefdisco.stages.propose", fromlist=["seed_proposals"]).seed_proposals(
        list(family.seed_objectives), family)
    assert [p["genome"] is not None for p in seeds] == [True, False, True]  # label smoothing is code, not a genome
