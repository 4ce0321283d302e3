"""The sandbox: static policy, constrained loader, property checks, fingerprints and the forked runner.

Hostile and broken programs live as files in tests/hostile/, each with a header:

    # <what it tries>
    # layer: static | runtime      (static: the policy must refuse it; runtime: the policy lets it through
    #                                on purpose and the limits or property checks must catch it)
    # expect: <a substring of the validation error>

The OS-level layers (audit hook, rlimits, uid, network namespace, wall clock) are tested directly by
replacing checks.run_checks in this process before forking: the child inherits the replacement, so
trusted test code can attempt what a policy-approved program never could.
"""

from __future__ import annotations

import ast
import glob
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from prefdisco.objectives import LIBRARY, library_source
from prefdisco.sandbox import checks, landlock, runner
from prefdisco.sandbox.loader import ObjectiveContext, _restricted_import, load_objective
from prefdisco.sandbox.static_policy import PolicyViolation, check_source
from prefdisco.sandbox.runner import SandboxLimits, validate_programs

HOSTILE_DIR = Path(__file__).parent / "hostile"
HOSTILE_FILES = sorted(HOSTILE_DIR.glob("*.py"))
MARKER_GLOB = os.path.join(tempfile.gettempdir(), "prefdisco_pwned_*")
SIGNATURE = "self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps"
DPO = library_source("dpo")
DPO_BODY_LOSS = "losses = -F.logsigmoid(self.beta * logits)"


def hostile_header(path: Path) -> tuple[str, str]:
    text = path.read_text()
    layer = re.search(r"^# layer: (static|runtime)$", text, re.MULTILINE)
    expect = re.search(r"^# expect: (.+)$", text, re.MULTILINE)
    assert layer and expect, f"{path.name} lacks its '# layer:' / '# expect:' header"
    return layer.group(1), expect.group(1)


def current_address_space_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) // 1024
    return 1024


def variant(code: str, new_loss: str) -> str:
    assert DPO_BODY_LOSS in code
    return code.replace(DPO_BODY_LOSS, new_loss)


# ---- fixtures: each batch is validated once, in one call, as the workflow does ----------------------------------


@pytest.fixture(scope="module")
def library_results() -> dict[str, dict]:
    results = validate_programs([(name, library_source(name)) for name in LIBRARY], beta=0.1)
    return {r["id"]: r for r in results}


@pytest.fixture(scope="module")
def sandbox_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Route the runner's temporary directories into a folder this module owns, to check they are removed."""
    folder = tmp_path_factory.mktemp("sandbox-tmp")
    previous = tempfile.tempdir
    tempfile.tempdir = str(folder)
    yield folder
    tempfile.tempdir = previous


@pytest.fixture(scope="module")
def hostile_results(sandbox_tmp: Path) -> dict[str, dict]:
    for stale in glob.glob(MARKER_GLOB):
        os.unlink(stale)
    limits = SandboxLimits(cpu_seconds=1, memory_mb=max(2048, current_address_space_mb() + 1024), wall_seconds=6)
    programs = [(path.stem, path.read_text()) for path in HOSTILE_FILES]
    results = validate_programs(programs, beta=0.1, limits=limits)
    return {r["id"]: r for r in results}


# ---- the library --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LIBRARY)
def test_library_objective_is_valid(library_results: dict[str, dict], name: str) -> None:
    record = library_results[name]
    assert record["error"] is None
    assert record["valid"] is True
    assert set(record["checks"]) == set(checks.CHECK_NAMES)
    assert all(status == "pass" for status in record["checks"].values()), record["checks"]
    assert re.fullmatch(r"[0-9a-f]{64}", record["fingerprint"])
    json.dumps(record, allow_nan=False)  # strict JSON, ready for the workflow's files


def test_library_fingerprints_are_pairwise_distinct(library_results: dict[str, dict]) -> None:
    # No two library objectives behave identically, so every fingerprint differs.
    fingerprints = {name: record["fingerprint"] for name, record in library_results.items()}
    assert len(set(fingerprints.values())) == len(LIBRARY), fingerprints


def test_fingerprint_ignores_positive_scale_and_constant_but_not_behaviour(library_results: dict[str, dict]) -> None:
    programs = [
        ("scaled", variant(DPO, "losses = -3.0 * F.logsigmoid(self.beta * logits)")),
        ("shifted", variant(DPO, "losses = -F.logsigmoid(self.beta * logits) + 7.5")),
        ("scaled_and_shifted", variant(DPO, "losses = 0.25 * (-F.logsigmoid(self.beta * logits)) - 2.0")),
        ("softplus_form", variant(DPO, "losses = F.softplus(-self.beta * logits)")),
        ("negated", variant(DPO, "losses = F.logsigmoid(self.beta * logits)")),
        ("double_beta", variant(DPO, "losses = -F.logsigmoid(2 * self.beta * logits)")),
    ]
    results = {r["id"]: r for r in validate_programs(programs, beta=0.1)}
    dpo = library_results["dpo"]["fingerprint"]
    assert all(r["valid"] for r in results.values()), {k: r["error"] for k, r in results.items()}
    for same in ("scaled", "shifted", "scaled_and_shifted", "softplus_form"):
        assert results[same]["fingerprint"] == dpo, same
    for different in ("negated", "double_beta"):
        assert results[different]["fingerprint"] != dpo, different
    assert library_results["slic"]["fingerprint"] != dpo
    assert library_results["ipo"]["fingerprint"] != dpo


def test_curve_matches_dpo_analytically(library_results: dict[str, dict]) -> None:
    curve = library_results["dpo"]["curve"]
    assert curve["beta"] == 0.1
    assert len(curve["beta_rho"]) == len(curve["loss"]) == len(curve["grad"]) == checks.CURVE_POINTS
    assert curve["beta_rho"][0] == -10.0 and curve["beta_rho"][-1] == 10.0
    for x, loss, grad in zip(curve["beta_rho"], curve["loss"], curve["grad"]):
        expected_loss = math.log1p(math.exp(-x))  # -log sigmoid(x)
        expected_grad = -0.1 / (1 + math.exp(x))  # d/drho = -beta * sigmoid(-beta rho)
        assert loss == pytest.approx(expected_loss, rel=1e-4, abs=1e-5)
        assert grad == pytest.approx(expected_grad, rel=1e-3, abs=1e-6)


def test_measurements_are_recorded_not_judged(library_results: dict[str, dict]) -> None:
    for name, record in library_results.items():
        measurements = record["measurements"]
        assert measurements["margin_increases"] is True, name
        assert measurements["large_rho"]["beta_rho"] == list(checks.LARGE_BETA_RHO)
        assert len(measurements["large_rho"]["loss"]) == len(checks.LARGE_BETA_RHO)
    # DPO saturates for confident pairs: loss and gradient vanish at beta*rho = +50.
    large = library_results["dpo"]["measurements"]["large_rho"]
    assert large["loss"][-1] < 1e-15 and abs(large["grad"][-1]) < 1e-15
    # AQFL's batch std is NaN for one example: recorded, yet the objective stays valid.
    assert library_results["aqfl"]["measurements"]["finite_at_batch_size_1"] is False
    assert library_results["aqfl"]["valid"] is True
    assert library_results["dpo"]["measurements"]["finite_at_batch_size_1"] is True


def test_eight_candidates_validate_concurrently_in_order() -> None:
    # Their speed is measured by benchmarks/bench_validation.py, side by side; tests do not time things.
    programs = [(f"c{i}", library_source(LIBRARY[i % len(LIBRARY)])) for i in range(8)]
    results = validate_programs(programs, beta=0.1)
    assert [r["id"] for r in results] == [f"c{i}" for i in range(8)]
    assert all(r["valid"] for r in results)


# ---- hostile and broken programs ------------------------------------------------------------------------------


def test_hostile_corpus_is_large_and_mixed() -> None:
    layers = [hostile_header(path)[0] for path in HOSTILE_FILES]
    assert len(HOSTILE_FILES) >= 30
    assert layers.count("runtime") >= 10  # enough programs get past the policy to exercise the runtime layer


@pytest.mark.parametrize("path", HOSTILE_FILES, ids=lambda p: p.stem)
def test_hostile_program_is_rejected_with_its_reason(hostile_results: dict[str, dict], path: Path) -> None:
    layer, expect = hostile_header(path)
    record = hostile_results[path.stem]
    assert record["valid"] is False
    assert record["fingerprint"] is None and record["curve"] is None
    assert expect in record["error"], record["error"]
    assert len(record["error"]) < 5000  # huge exception messages are truncated
    failed = [name for name, status in record["checks"].items() if status == "fail"]
    assert len(failed) == 1, record["checks"]
    if layer == "static":
        assert failed == ["static_policy"]
        with pytest.raises(PolicyViolation):
            check_source(path.read_text())
    else:
        assert check_source(path.read_text()) == "objective"  # the policy let it through on purpose
        assert failed != ["static_policy"]


def test_hostile_programs_left_no_files_behind(hostile_results: dict[str, dict], sandbox_tmp: Path) -> None:
    assert len(hostile_results) == len(HOSTILE_FILES)  # and this process carried on through all of them
    assert glob.glob(MARKER_GLOB) == []
    assert list(sandbox_tmp.iterdir()) == []  # every per-candidate directory was removed


def test_infinite_loop_is_killed_by_the_cpu_or_wall_limit(hostile_results: dict[str, dict]) -> None:
    record = hostile_results["infinite_loop"]
    assert re.search(r"killed by signal SIGXCPU|timed out after", record["error"])
    assert record["checks"]["no_input_mutation"] == "fail"  # the first check that calls the objective
    assert record["checks"]["static_policy"] == "pass" and record["checks"]["loads"] == "pass"
    assert record["wall_seconds"] < 10


# ---- the static policy ---------------------------------------------------------------------------------------


def test_policy_accepts_the_allowed_spellings() -> None:
    code = f'''"""A docstring is fine."""
import math
import torch
import torch.nn.functional as F
from torch.nn import functional as G
from torch.nn import functional
from math import log
def blended({SIGNATURE}):
    import torch.nn.functional
    def helper(x):
        return torch.nn.functional.softplus(-x)
    scale = lambda v: v * self.beta
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    terms = [helper(scale(logits)), G.relu(1 - logits), functional.silu(logits)]
    eps = torch.finfo(logits.dtype).eps
    weights = torch.where(logits > 0, 0.5, 1.0) * math.pi / log(10.0) + eps
    for i in range(2):
        weights = weights * 1.0
    return weights * sum(terms) / len(terms)
'''
    assert check_source(code) == "blended"
    function = load_objective(code)
    assert callable(function)


def test_policy_reports_every_problem_with_its_line() -> None:
    code = f"import os\ndef f({SIGNATURE}):\n    x = open('a')\n    self.beta = 2\n    return torch.load(x)\n"
    with pytest.raises(PolicyViolation) as raised:
        check_source(code)
    message = str(raised.value)
    assert "line 1: import of 'os' is not allowed; only torch, torch.nn.functional and math may be imported" in message
    assert "line 3: 'open' is not allowed" in message
    assert "line 4: assigning to or deleting attributes ('self.beta')" in message
    assert "line 5: 'torch.load' is not allowed" in message


@pytest.mark.parametrize(
    "body, expect",
    [
        ("return torch.nonexistent_function(policy_chosen_logps)", "'torch.nonexistent_function' does not exist"),
        ("return torch.distributions.Normal(0, 1).cdf(policy_chosen_logps)", "'torch.distributions' is not allowed"),
        ("return torch.nn.Softplus()(policy_chosen_logps)", "'torch.nn.Softplus' is not allowed"),
        ("return self.gamma * policy_chosen_logps", "the only attribute of self is self.beta"),
        ("return undefined_helper(policy_chosen_logps)", "name 'undefined_helper' is not defined"),
        ("policy_chosen_logps[0] = 1.0\n    return policy_chosen_logps", "assigning into the input 'policy_chosen_logps'"),
        ("return policy_chosen_logps._version", "attributes starting with an underscore are not allowed"),
        ("with torch.no_grad():\n        pass\n    return policy_chosen_logps", "'with' statements are not allowed"),
    ],
)
def test_policy_messages_name_the_problem(body: str, expect: str) -> None:
    with pytest.raises(PolicyViolation, match=re.escape(expect)):
        check_source(f"def f({SIGNATURE}):\n    {body}\n")


def test_loader_namespace_is_bare() -> None:
    function = load_objective(DPO)
    namespace = function.__globals__
    assert set(namespace) >= {"torch", "F", "math", "__builtins__"}
    for name in ("open", "exec", "eval", "getattr", "print", "__build_class__", "globals"):
        assert name not in namespace["__builtins__"], name
    with pytest.raises(ImportError, match="import of 'os' is not allowed"):
        _restricted_import("os")
    import torch

    inputs = [torch.tensor([-10.0, -20.0]), torch.tensor([-12.0, -19.0]), torch.tensor([-11.0, -20.0]), torch.tensor([-11.0, -20.0])]
    losses = function(ObjectiveContext(0.1), *inputs)
    assert losses.shape == (2,)


# ---- the runtime layers, exercised with trusted stand-ins for run_checks -----------------------------------------


def attempt(action, armed: bool = True):
    """A stand-in for checks.run_checks that performs ``action`` in the child and reports what happened."""

    def stand_in(code, beta, guard=None, progress=None, memory_mb=None):
        result = checks.empty_result()
        try:
            if armed:
                with guard.armed():
                    outcome = action()
            else:
                outcome = action()
            result["error"] = f"completed: {outcome!r}"
        except BaseException as error:  # noqa: BLE001
            result["error"] = f"{type(error).__name__}: {error}"
        result["measurements"]["violations"] = list(guard.violations)
        return result

    return stand_in


def run_stand_in(monkeypatch: pytest.MonkeyPatch, action, armed: bool = True, **limits) -> dict:
    monkeypatch.setattr(checks, "run_checks", attempt(action, armed))
    [record] = validate_programs([("stand-in", DPO)], beta=0.1, limits=SandboxLimits(**limits))
    return record


@pytest.mark.parametrize(
    "label, action, event",
    [
        ("read", lambda: open("/etc/passwd").read(), "open('/etc/passwd')"),
        ("write", lambda: open(MARKER_GLOB.replace("*", "audit_write"), "w"), "open("),
        ("os.system", lambda: os.system(f"touch {MARKER_GLOB.replace('*', 'audit_system')}"), "os.system"),
        ("subprocess", lambda: subprocess.run(["true"]), "subprocess.Popen"),
        ("socket", lambda: socket.socket(), "socket.__new__"),
        ("ctypes", lambda: __import__("ctypes").CDLL("libc.so.6"), "ctypes.dlopen"),
        ("listdir", lambda: os.listdir("/"), "os.listdir"),
    ],
)
def test_audit_hook_blocks_os_access_while_armed(monkeypatch: pytest.MonkeyPatch, label: str, action, event: str) -> None:
    record = run_stand_in(monkeypatch, action)
    assert record["error"].startswith("SandboxViolation"), record["error"]
    assert any(event in v for v in record["measurements"]["violations"]), record["measurements"]
    assert glob.glob(MARKER_GLOB) == []


def test_audit_hook_blocks_importing_new_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    module = "wave"
    if module in sys.modules:
        pytest.skip(f"{module} is already imported in this process")
    record = run_stand_in(monkeypatch, lambda: __import__(module))
    assert any(v.startswith(f"import('{module}')") for v in record["measurements"]["violations"]), record
    assert module not in sys.modules


def test_child_cannot_fork_or_write_files(monkeypatch: pytest.MonkeyPatch) -> None:
    def fork() -> str:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        return "forked"

    record = run_stand_in(monkeypatch, fork, armed=False)
    assert record["error"].startswith(("BlockingIOError", "OSError", "PermissionError")), record["error"]

    def write_here() -> str:
        with open("written.txt", "w") as handle:
            handle.write("x" * 10_000)
        return "written"

    record = run_stand_in(monkeypatch, write_here, armed=False)
    assert "File too large" in record["error"], record["error"]


def test_child_runs_in_an_empty_private_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    record = run_stand_in(monkeypatch, lambda: (os.getcwd(), os.listdir(".")), armed=False)
    cwd, listing = ast.literal_eval(record["error"].removeprefix("completed: "))
    assert os.path.basename(cwd).startswith("prefdisco-sandbox-") and listing == []
    assert not os.path.exists(cwd)  # removed by the parent afterwards


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges and a private network namespace need root")
def test_child_drops_root_and_loses_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    record = run_stand_in(monkeypatch, lambda: os.getuid(), armed=False)
    assert record["error"] == "completed: 65534"

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        record = run_stand_in(monkeypatch, lambda: socket.create_connection(("127.0.0.1", port), timeout=2), armed=False)
    assert not record["error"].startswith("completed"), record["error"]  # the parent's loopback is unreachable


@pytest.mark.skipif(landlock.abi_version() == 0, reason="the kernel has no Landlock")
def test_kernel_walls_hold_past_the_policy_and_the_audit_hook(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Unarmed stand-ins (as if code slipped past both Python-level layers) still cannot read outside, through
    Python or through torch's C++ file access, nor open a TCP connection, as root or not."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x01\x02\x03\x04" * 4)
    for action in (lambda: open(secret, "rb").read(), lambda: torch.from_file(str(secret), size=4, dtype=torch.uint8),
                   lambda: os.listdir(tmp_path), lambda: open("/etc/hostname").read()):
        record = run_stand_in(monkeypatch, action, armed=False)
        assert record["error"].startswith(("PermissionError", "RuntimeError")), record["error"]
        assert "completed" not in record["error"]

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        record = run_stand_in(monkeypatch, lambda: socket.socket().connect(("127.0.0.1", port)), armed=False)
    assert record["error"].startswith(("PermissionError", "OSError")), record["error"]

    # Still allowed: torch's own files (lazily loaded libraries, sources for tracebacks) and the private folder.
    torch_init = os.path.join(os.path.dirname(torch.__file__), "__init__.py")
    record = run_stand_in(monkeypatch, lambda: (len(open(torch_init).read()) > 0, open("empty", "w").close()), armed=False)
    assert record["error"] == "completed: (True, None)", record["error"]


def test_huge_output_on_stdout_and_stderr_goes_nowhere(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    def flood() -> str:
        block = b"x" * (1 << 20)
        for _ in range(50):
            os.write(1, block)
            os.write(2, block)
        return "flooded"

    record = run_stand_in(monkeypatch, flood, armed=False)
    assert record["error"] == "completed: 'flooded'"
    captured = capfd.readouterr()
    assert len(captured.out) + len(captured.err) < 10_000


def test_wall_clock_limit_kills_a_sleeping_child(monkeypatch: pytest.MonkeyPatch) -> None:
    record = run_stand_in(monkeypatch, lambda: time.sleep(60), armed=False, wall_seconds=1)
    assert record["error"] == "timed out after 1 s (possible infinite loop)"
    assert record["valid"] is False and record["wall_seconds"] < 5


def test_oversized_result_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    record = run_stand_in(monkeypatch, lambda: "y" * 3_000_000, armed=False, max_output_bytes=100_000)
    assert "more than 100000 bytes" in record["error"]


def test_crashing_child_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    record = run_stand_in(monkeypatch, os.abort, armed=False)
    assert record["error"].startswith("crashed with signal SIGABRT"), record["error"]


def test_candidate_code_is_never_executed_in_the_calling_process(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = os.getpid()
    real_define = checks.define_objective

    def define_only_in_a_child(name, compiled):
        if os.getpid() == parent:
            raise AssertionError("candidate code executed in the calling process")
        return real_define(name, compiled)

    monkeypatch.setattr(checks, "define_objective", define_only_in_a_child)
    [record] = validate_programs([("dpo", DPO)], beta=0.1)
    assert record["valid"] is True, record["error"]


def test_results_keep_input_order_and_ids() -> None:
    programs = [("b", "def broken(:"), ("a", DPO), ("c", variant(DPO, "losses = (logits < 0).float()"))]
    results = validate_programs(programs, beta=0.1)
    assert [r["id"] for r in results] == ["b", "a", "c"]
    assert [r["valid"] for r in results] == [False, True, False]
    assert set(results[0]) == {"id", "valid", "error", "checks", "fingerprint", "measurements", "curve", "wall_seconds"}
    assert runner.SandboxLimits() == SandboxLimits(cpu_seconds=20, memory_mb=4096, wall_seconds=60.0)  # the schema's defaults


# The paper's prompt template annotates with torch.FloatTensor; torch.tensor(..., device=...) makes torch's C++
# code import torch.storage through the objective's own __import__ (a regression this guards against).
LLM_STYLE = '''import torch
import torch.nn.functional as F
import math

def adaptive_margin_loss(
    self,
    policy_chosen_logps: torch.FloatTensor,
    policy_rejected_logps: torch.FloatTensor,
    reference_chosen_logps: torch.FloatTensor,
    reference_rejected_logps: torch.FloatTensor,
) -> torch.FloatTensor:
    """Blend logistic and squared-hinge losses; weights from the batch."""
    pi_logratios = policy_chosen_logps - policy_rejected_logps
    ref_logratios = reference_chosen_logps - reference_rejected_logps
    logits = pi_logratios - ref_logratios
    margin = torch.tensor(0.5, device=logits.device, dtype=logits.dtype)
    scaled = self.beta * logits
    weight = torch.sigmoid(scaled)
    hinge = F.relu(margin - scaled) ** 2
    smooth = torch.nn.functional.softplus(-scaled, beta=2.0)
    median = torch.quantile(scaled, 0.5)
    losses = weight * -F.logsigmoid(scaled) + (1 - weight) * hinge + 0.1 * smooth + 0.0 * median
    losses = torch.clamp(losses, min=0.0, max=1e4) * math.log(math.e)
    if not isinstance(losses, torch.Tensor):
        raise ValueError("expected a tensor")
    return losses.to(logits.dtype).reshape(-1)
'''


def test_typical_llm_written_code_is_accepted() -> None:
    [record] = validate_programs([("llm", LLM_STYLE)], beta=0.1)
    assert record["error"] is None and record["valid"] is True


def test_restricted_import_serves_torch_internals_but_not_import_statements() -> None:
    import torch.storage  # noqa: F401  (loaded, so that the restricted import may serve it)

    # PyImport_Import's convention: an empty list as fromlist; like builtins.__import__, it answers the top package.
    assert _restricted_import("torch.storage", {}, {}, [], 0) is __import__("torch.storage", {}, {}, [], 0)
    with pytest.raises(ImportError, match="import of 'torch.storage' is not allowed"):
        _restricted_import("torch.storage", {}, {}, None, 0)  # what 'import torch.storage' would pass
    with pytest.raises(ImportError):
        _restricted_import("wave", {}, {}, [], 0)  # not loaded: never loads anything new


class TrippingGuard(checks.NullGuard):
    """A guard that reports a blocked operation on its n-th armed window (as the audit hook would)."""

    def __init__(self, trip_at: int) -> None:
        super().__init__()
        self.entries = 0
        self.trip_at = trip_at

    def armed(self, allow: frozenset[str] = frozenset()):
        self.entries += 1
        if self.entries == self.trip_at:
            self.violations.append("open('/etc/passwd') is not permitted in the sandbox")
        return super().armed(allow)


def test_a_blocked_operation_fails_the_check_that_was_running() -> None:
    result = checks.run_checks(DPO, 0.1, TrippingGuard(trip_at=1))  # the first window: defining the function
    assert result["valid"] is False
    assert result["error"] == "the objective attempted a blocked operation: open('/etc/passwd') is not permitted in the sandbox"
    assert result["checks"]["loads"] == "fail" and result["checks"]["static_policy"] == "pass"


def test_a_blocked_operation_while_measuring_invalidates_the_program() -> None:
    guard = TrippingGuard(trip_at=200)  # past the checks (about 80 windows), inside the curve's 121 points
    result = checks.run_checks(DPO, 0.1, guard)
    assert guard.entries >= 200
    assert result["valid"] is False and result["error"].startswith("the objective attempted a blocked operation")
    assert result["checks"]["no_blocked_operations"] == "fail"
    assert [n for n, s in result["checks"].items() if s == "fail"] == ["no_blocked_operations"]
    assert result["fingerprint"] is None and result["curve"] is None


# ---- the allow-list of numerical operations ------------------------------------------------------------------


def test_allow_list_admits_the_library_and_the_evolutionary_proposers_output() -> None:
    """The paper's seven discovered objectives, the four baselines, and a few hundred programs of the offline
    evolutionary proposer (its proposals, and random genomes covering every operator it renders) all pass."""
    import random

    from prefdisco.proposers.evolution import propose_evolution, random_genome, render_genome

    assert len(LIBRARY) == 11
    programs = {name: library_source(name) for name in LIBRARY}
    for generation in range(1, 5):
        for proposal in propose_evolution([], generation, 50, seed=generation):
            programs[proposal["name"] + f"_s{generation}"] = proposal["code"]
    rng = random.Random(0)
    for index in range(300):
        programs[f"random_{index}"] = render_genome(random_genome(rng, 6), f"random_{index}")
    assert len(programs) >= 500
    refused = {}
    for name, code in programs.items():
        try:
            check_source(code)
        except PolicyViolation as violation:
            refused[name] = str(violation)
    assert refused == {}


@pytest.mark.parametrize(
    "expression, expect",
    [
        ("policy_chosen_logps.data * 1.0", "'.data' bypasses autograd"),
        ("policy_chosen_logps * policy_chosen_logps.data_ptr()", "raw memory addresses are not available"),
        ("policy_chosen_logps * (policy_chosen_logps.grad_fn is None)", "the autograd graph is not available"),
        ("policy_chosen_logps * policy_chosen_logps.register_hook(abs)", "hooks are not allowed"),
        ("policy_chosen_logps.detach().add_(1.0)", "'.add_' modifies a tensor in place"),
        ("torch.sparse_coo_tensor([[0]], [1.0], (1,)).to_dense()", "sparse tensors are not available"),
        ("policy_chosen_logps.to_sparse().to_dense()", "sparse tensors are not available"),
        ("policy_chosen_logps.storage()", "'.storage' is not allowed"),
        ("policy_chosen_logps.untyped_storage()", "'.untyped_storage' is not allowed"),
        ("policy_chosen_logps.numpy()", "numpy is not available"),
        ("torch.tensor(policy_chosen_logps.tolist())", "stay in torch"),
        ("policy_chosen_logps.backward()", "the trainer computes gradients"),
        ("policy_chosen_logps.requires_grad_(True)", "'.requires_grad_' modifies a tensor in place"),
        ("policy_chosen_logps.retain_grad()", "the trainer computes gradients"),
        ("policy_chosen_logps.new_tensor([1.0])", "not on the objective's list of numerical operations; use arithmetic"),
        ("torch.empty_like(policy_chosen_logps)", "uninitialised memory is not available"),
        ("policy_chosen_logps * torch.rand_like(policy_chosen_logps)", "randomness is not allowed"),
    ],
)
def test_allow_list_refuses_by_name_with_advice(expression: str, expect: str) -> None:
    with pytest.raises(PolicyViolation, match=re.escape(expect)):
        check_source(f"def f({SIGNATURE}):\n    return {expression}\n")


# ---- validation also sees graph-connected inputs ---------------------------------------------------------------


@pytest.mark.parametrize(
    "condition",
    ["policy_chosen_logps.grad_fn is not None", "not policy_chosen_logps.is_leaf"],
)
def test_graph_inputs_check_catches_a_program_that_tells_training_apart(condition: str) -> None:
    """A program that behaves on leaf tensors and not on a trainer's graph-connected ones (the static policy
    refuses these names; the check is compiled around it here to show it holds on its own)."""
    code = DPO.replace("    return losses", f"    if {condition}:\n        return losses * 0.5\n    return losses")
    assert code != DPO
    candidate = checks._Candidate("logistic_log_loss", compile(code, "<objective>", "exec"), checks.NullGuard(), None)
    with pytest.raises(checks.CheckFailed, match="differ when its inputs come out of a computation graph"):
        candidate.check_graph_inputs(0.1)
    honest = checks._Candidate("logistic_log_loss", compile(DPO, "<objective>", "exec"), checks.NullGuard(), None)
    honest.check_graph_inputs(0.1)


def test_library_objectives_pass_the_graph_inputs_check(library_results: dict[str, dict]) -> None:
    assert all(result["checks"]["graph_inputs"] == "pass" for result in library_results.values())
