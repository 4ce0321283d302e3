"""Property checks on an objective program. Runs inside the sandbox child, never in the orchestrator.

Every call into candidate code (forward and backward) happens inside ``guard.armed()``, the runner's audit
hook window. Checks run in order and stop at the first failure; its message is the validation error. After
the checks, measurements (recorded, never grounds for rejection), the figure curve and the behavioural
fingerprint are computed.

Design of the input grids (kept small: the whole child must take well under a second):

* ordinary inputs: seeded random log-probabilities around -20..-200 with policy/reference gaps of a few nats;
* extreme inputs: for each beta in (0.01, 0.05, 0.1, 0.5, 1.0), |rho| up to min(1000, 50 / beta), where rho is
  the log-ratio difference. Capping |beta * rho| at 50 is deliberate: the paper's own LRML, CELL and DBAQL
  contain exp(-beta * rho), which is finite in float32 up to beta * rho = -88 and overflows beyond, so a
  grid reaching |rho| = 1000 at beta = 1 would reject published objectives. 50 leaves a wide margin while
  still catching losses that blow up far earlier (exp(rho), 1 / rho, log of a non-positive number);
* the curve: 121 points of beta * rho in [-10, 10] at the run's beta, each on a batch whose examples all share
  that rho (the natural choice for losses that use batch statistics);
* the fingerprint: float64 gradients over 3 betas x 4 fixed batch compositions (built from formulas, not a
  random generator, so it stays stable across torch versions), normalised by their L2 norm (a positive scale
  factor and an added constant do not change it), rounded to 4 decimals and hashed.
"""

from __future__ import annotations

import contextlib
import math
import traceback
import warnings
from typing import Any, Callable, ContextManager, Protocol

import torch

from prefdisco.io import sha256_text
from prefdisco.sandbox.loader import OBJECTIVE_FILENAME, ObjectiveContext, compile_objective, define_objective
from prefdisco.sandbox.static_policy import PolicyViolation

CHECK_NAMES = (
    "static_policy",
    "loads",
    "no_input_mutation",
    "output_shape",
    "float_dtype",
    "finite_loss",
    "has_gradient",
    "finite_gradient",
    "finite_at_extremes",
    "deterministic",
    "graph_inputs",
    "fingerprint",
    "no_blocked_operations",
)
MEASUREMENT_STAGE = "measurements"  # progress name for the non-check work between fingerprint and the last check

INPUT_NAMES = ("policy_chosen_logps", "policy_rejected_logps", "reference_chosen_logps", "reference_rejected_logps")
BATCH_SIZES = (7, 2, 64, 1)  # 7 first: the most telling messages come from a typical batch
CHECK_BETAS = (0.01, 0.05, 0.1, 0.5, 1.0)
EXTREME_RHO = 1000.0
EXTREME_BETA_RHO = 50.0  # see the module docstring: exp(-beta * rho) must stay finite in float32
CURVE_POINTS = 121
CURVE_BETA_RHO = 10.0
CURVE_BATCH = 2
LARGE_BETA_RHO = (-50.0, -20.0, 20.0, 50.0)
MARGIN_STEPS = 5
MARGIN_STEP_SIZE = 1.0  # nats of L2 movement of the policy log-probs per step
FINGERPRINT_BETAS = (0.05, 0.1, 0.5)
FINGERPRINT_DECIMALS = 4
MAX_MESSAGE_CHARS = 600
MAX_WARNINGS = 5


class SandboxViolation(PermissionError):
    """Raised by the sandbox's audit hook when armed candidate code attempts a blocked operation."""


class Guard(Protocol):
    violations: list[str]

    def armed(self, allow: frozenset[str] = frozenset()) -> ContextManager[None]: ...


class NullGuard:
    """No audit hook: for running the checks in-process on trusted code (tests, notebooks)."""

    def __init__(self) -> None:
        self.violations: list[str] = []

    def armed(self, allow: frozenset[str] = frozenset()) -> ContextManager[None]:
        return contextlib.nullcontext()


class CheckFailed(Exception):
    """A check failed; the message is the validation error shown to the author."""


def empty_result() -> dict[str, Any]:
    return {
        "valid": False,
        "error": None,
        "checks": {name: "skipped" for name in CHECK_NAMES},
        "fingerprint": None,
        "measurements": {},
        "curve": None,
    }


def run_checks(
    code: str,
    beta: float,
    guard: Guard | None = None,
    progress: Callable[[str], None] | None = None,
    memory_mb: int | None = None,
) -> dict[str, Any]:
    """Load ``code`` and run every check; returns the JSON-ready part of a validation record."""
    guard = guard or NullGuard()
    progress = progress or (lambda stage: None)
    result = empty_result()
    checks = result["checks"]
    state: dict[str, Any] = {}

    with warnings.catch_warnings(record=True) as caught:
        # record=True swaps showwarning for a list append: no linecache file reads while the hook is armed.
        warnings.simplefilter("always")
        try:
            name, compiled = _stage(progress, checks, "static_policy", lambda: _static_policy(code))
            candidate = _stage(progress, checks, "loads", lambda: _Candidate(name, compiled, guard, memory_mb))
            for stage, check in (
                ("no_input_mutation", candidate.check_no_input_mutation),
                ("output_shape", lambda: candidate.check_output_shape(beta, result["measurements"])),
                ("float_dtype", candidate.check_float_dtype),
                ("finite_loss", candidate.check_finite_loss),
                ("has_gradient", lambda: state.update(grads=candidate.check_has_gradient())),
                ("finite_gradient", lambda: candidate.check_finite_gradient(state["grads"])),
                ("finite_at_extremes", candidate.check_finite_at_extremes),
                ("deterministic", lambda: candidate.check_deterministic(beta)),
                ("graph_inputs", lambda: candidate.check_graph_inputs(beta)),
                ("fingerprint", lambda: state.update(fingerprint=candidate.fingerprint())),
            ):
                _stage(progress, checks, stage, check)
            result["fingerprint"] = state["fingerprint"]
            progress(MEASUREMENT_STAGE)
            result["measurements"].update(candidate.measure(beta))
            result["curve"] = candidate.curve(beta, result["measurements"])
            _stage(progress, checks, "no_blocked_operations", lambda: _no_violations(guard))
            result["valid"] = True
        except CheckFailed as failure:
            result["error"] = str(failure)
            if "fail" not in checks.values():  # a blocked operation while measuring, outside any named check
                checks["no_blocked_operations"] = "fail"
            result["fingerprint"] = None  # only valid programs carry a fingerprint (used for duplicates)
            result["curve"] = None
        messages = sorted({str(w.message)[:200] for w in caught})
    if messages:
        result["measurements"]["warnings"] = messages[:MAX_WARNINGS]
    return result


def _stage(progress: Callable[[str], None], checks: dict[str, str], stage: str, work: Callable[[], Any]) -> Any:
    progress(stage)
    try:
        value = work()
    except CheckFailed:
        checks[stage] = "fail"
        raise
    checks[stage] = "pass"
    return value


def _static_policy(code: str) -> Any:
    try:
        return compile_objective(code)
    except PolicyViolation as violation:
        raise CheckFailed(str(violation)) from None


BLOCKED_PREFIX = "the objective attempted a blocked operation"


def _blocked(violation: str) -> str:
    return f"{BLOCKED_PREFIX}: {violation}"


def _no_violations(guard: Guard) -> None:
    if guard.violations:
        raise CheckFailed(_blocked(guard.violations[0]))


# ---- inputs -------------------------------------------------------------------------------------------------

Inputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def random_inputs(batch: int, seed: int = 0, dtype: torch.dtype = torch.float32, grad: bool = False) -> Inputs:
    """Ordinary log-probabilities: sequences of tens to hundreds of tokens, policy near the reference."""
    generator = torch.Generator().manual_seed(1000 * seed + batch)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(batch, generator=generator, dtype=torch.float64)

    reference_chosen = -uniform(20.0, 200.0)
    reference_rejected = -uniform(20.0, 200.0)
    policy_chosen = reference_chosen + 3.0 * torch.randn(batch, generator=generator, dtype=torch.float64)
    policy_rejected = reference_rejected + 3.0 * torch.randn(batch, generator=generator, dtype=torch.float64)
    return _finish((policy_chosen, policy_rejected, reference_chosen, reference_rejected), dtype, grad)


def pair_inputs(
    rho: torch.Tensor, reference_gap: torch.Tensor | float = 0.0, shift: torch.Tensor | float = 0.0,
    base: float = -100.0,
) -> Inputs:
    """Inputs whose log-ratio difference is exactly ``rho`` (a float64 tensor of shape (B,)).

    ``reference_gap`` is reference_chosen - reference_rejected (so the policy's own chosen-vs-rejected order
    can differ from the sign of rho); ``shift`` moves both policy log-probs together (changing the chosen and
    rejected log-ratios individually, which KTO-like losses see, while keeping rho).
    """
    gap = torch.as_tensor(reference_gap, dtype=torch.float64)
    zeros = torch.zeros(rho.shape, dtype=torch.float64)  # broadcasts a scalar gap to the batch
    reference_chosen = base + gap / 2 + zeros
    reference_rejected = base - gap / 2 + zeros
    policy_chosen = reference_chosen + shift + rho / 2
    policy_rejected = reference_rejected + shift - rho / 2
    return policy_chosen, policy_rejected, reference_chosen, reference_rejected


def _finish(tensors: tuple[torch.Tensor, ...], dtype: torch.dtype, grad: bool) -> Inputs:
    out = [t.detach().to(dtype).clone() for t in tensors]
    if grad:
        out[0].requires_grad_(True)
        out[1].requires_grad_(True)
    return tuple(out)  # type: ignore[return-value]


def _extreme_batches(beta: float) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    rho_max = min(EXTREME_RHO, EXTREME_BETA_RHO / beta)
    mixed = rho_max * torch.tensor([-1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0], dtype=torch.float64)
    index = torch.arange(len(mixed), dtype=torch.float64)
    return [
        ("a mixed batch", mixed, -5.0 - 3.0 * index),
        ("a batch of all-large positive rho", torch.full((2,), rho_max, dtype=torch.float64), torch.zeros(2)),
        ("a batch of all-large negative rho", torch.full((2,), -rho_max, dtype=torch.float64), torch.zeros(2)),
    ]


def _fingerprint_batches(beta: float) -> list[Inputs]:
    compositions = (
        ([-4.0, -2.0, -1.0, -0.5, -0.1, 0.2, 0.7, 1.5, 3.0, 5.0], "varied"),
        ([0.5, 1.0, 2.0], 4.0),
        ([-3.0, -0.5], 0.0),
        ([-1.0, -1.0, -1.0, 2.0], -2.0),
    )
    batches = []
    for beta_rho, gap in compositions:
        rho = torch.tensor(beta_rho, dtype=torch.float64) / beta
        index = torch.arange(len(beta_rho), dtype=torch.float64)
        reference_gap = -5.0 - 3.0 * index if gap == "varied" else torch.full_like(rho, float(gap))
        shift = 1.5 * torch.sin(index + 1.0)
        batches.append(_finish(pair_inputs(rho, reference_gap, shift), torch.float64, grad=True))
    return batches


# ---- the candidate under test ---------------------------------------------------------------------------------


class _Candidate:
    def __init__(self, name: str, compiled: Any, guard: Guard, memory_mb: int | None) -> None:
        self.guard = guard
        self.memory_mb = memory_mb
        # Executing the definition runs candidate-written expressions (annotations): armed, like every call.
        # The exec() call itself raises the 'exec' audit event, so that one event is allowed here.
        self.function = self._guarded(
            lambda: define_objective(name, compiled), "defining the function", allow=frozenset({"exec"})
        )

    # -- calling into candidate code

    def _guarded(self, work: Callable[[], Any], what: str, allow: frozenset[str] = frozenset()) -> Any:
        seen = len(self.guard.violations)
        try:
            with self.guard.armed(allow):
                value = work()
        except CheckFailed:
            raise
        except BaseException as error:  # noqa: BLE001 -- anything the candidate raises is its failure
            if len(self.guard.violations) > seen:
                raise CheckFailed(_blocked(self.guard.violations[seen])) from None
            raise CheckFailed(f"{describe_exception(error, self.memory_mb)} ({what})") from None
        if len(self.guard.violations) > seen:  # blocked inside torch code that swallowed the exception
            raise CheckFailed(_blocked(self.guard.violations[seen]))
        return value

    def call(self, beta: float, inputs: Inputs, what: str) -> Any:
        return self._guarded(lambda: self.function(ObjectiveContext(beta), *inputs), what)

    def losses(self, beta: float, inputs: Inputs, what: str) -> torch.Tensor:
        """Call, and insist on a floating-point tensor of shape (B,) (already checked; cheap to re-assert)."""
        out = self.call(beta, inputs, what)
        problem = shape_problem(out, len(inputs[0])) or dtype_problem(out)
        if problem:
            raise CheckFailed(f"{problem} ({what})")
        return out

    def gradients(self, losses: torch.Tensor, wrt: tuple[torch.Tensor, ...], what: str) -> tuple[torch.Tensor, ...]:
        """Gradients of losses.sum(); backward runs candidate-built graphs (and hooks), so it is armed too."""
        if not losses.requires_grad:
            raise CheckFailed(
                f"the losses do not depend differentiably on the policy log-probabilities ({what}): no gradient "
                "flows (e.g. .detach(), .item(), argmax, comparisons or .float() of a boolean); training needs one"
            )
        grads = self._guarded(
            lambda: torch.autograd.grad(losses.sum(), wrt, allow_unused=True), f"computing gradients, {what}"
        )
        return tuple(torch.zeros_like(w) if g is None else g for g, w in zip(grads, wrt))

    # -- checks

    def check_no_input_mutation(self) -> None:
        inputs = random_inputs(7, seed=1)
        before = [t.clone() for t in inputs]
        versions = [t._version for t in inputs]  # in-place ops bump the version even when values survive
        self.call(0.1, inputs, "on ordinary inputs")
        for name, tensor, original, version in zip(INPUT_NAMES, inputs, before, versions):
            if tensor._version != version or not torch.equal(tensor, original):
                raise CheckFailed(
                    f"the objective modified its input '{name}' in place (e.g. .add_(), .mul_() or item "
                    "assignment); compute new tensors instead"
                )

    def check_output_shape(self, beta: float, measurements: dict[str, Any]) -> None:
        for batch in BATCH_SIZES:
            out = self.call(beta, random_inputs(batch, seed=2), f"batch size {batch}")
            problem = shape_problem(out, batch)
            if problem:
                raise CheckFailed(problem)
            if batch == 1:
                # Losses built on batch statistics (std, var) are NaN for one example; recorded, not rejected.
                measurements["finite_at_batch_size_1"] = bool(torch.isfinite(out.detach()).all())

    def check_float_dtype(self) -> None:
        problem = dtype_problem(self.call(0.1, random_inputs(7, seed=3), "on ordinary inputs"))
        if problem:
            raise CheckFailed(problem)

    def check_finite_loss(self) -> None:
        for beta in CHECK_BETAS:
            out = self.losses(beta, random_inputs(8, seed=4), f"beta={beta}, ordinary inputs")
            if not torch.isfinite(out).all():
                raise CheckFailed(
                    f"the loss is {_bad_value(out)} on ordinary inputs at beta={beta}; losses must be finite"
                )

    def check_has_gradient(self) -> list[tuple[float, tuple[torch.Tensor, ...]]]:
        collected = []
        nonzero = False
        for beta in CHECK_BETAS:
            inputs = random_inputs(8, seed=5, grad=True)
            out = self.losses(beta, inputs, f"beta={beta}, ordinary inputs")
            grads = self.gradients(out, inputs[:2], f"beta={beta}, ordinary inputs")
            nonzero = nonzero or any(bool((g != 0).any()) for g in grads)
            collected.append((beta, grads))
        if not nonzero:
            raise CheckFailed(
                "the gradient of the loss with respect to the policy log-probabilities is identically zero on "
                "ordinary inputs (e.g. rounding, argmax or a step function); training would not move the policy"
            )
        return collected

    def check_finite_gradient(self, collected: list[tuple[float, tuple[torch.Tensor, ...]]]) -> None:
        for beta, grads in collected:
            for name, grad in zip(INPUT_NAMES, grads):
                if not torch.isfinite(grad).all():
                    raise CheckFailed(f"the gradient with respect to {name} is {_bad_value(grad)} on ordinary "
                                      f"inputs at beta={beta}")

    def check_finite_at_extremes(self) -> None:
        for beta in CHECK_BETAS:
            for description, rho, reference_gap in _extreme_batches(beta):
                inputs = _finish(pair_inputs(rho, reference_gap, base=-600.0), torch.float32, grad=True)
                what = f"beta={beta}, {description} with |rho| up to {float(rho.abs().max()):g}"
                out = self.losses(beta, inputs, what)
                grads = self.gradients(out, inputs[:2], what)
                for label, values in (("loss", out), ("gradient", grads[0]), ("gradient", grads[1])):
                    bad = ~torch.isfinite(values.detach())
                    if bad.any():
                        at = float(rho[int(bad.nonzero()[0, 0])])
                        raise CheckFailed(
                            f"the {label} is {_bad_value(values)} at beta={beta}, rho={at:g} (beta*rho={beta * at:g}) "
                            f"in {description}; losses and gradients must stay finite for |beta*rho| up to "
                            f"{EXTREME_BETA_RHO:g} (use numerically stable forms such as F.logsigmoid, F.softplus)"
                        )

    def check_deterministic(self, beta: float) -> None:
        inputs = random_inputs(7, seed=6)
        first = self.losses(beta, inputs, "determinism, first call")
        second = self.losses(beta, inputs, "determinism, second call")
        if not torch.equal(first, second):
            raise CheckFailed("the objective returned different losses for the same inputs (randomness such as "
                              "torch.rand or dropout is not allowed); it must be a deterministic function")

    def check_graph_inputs(self, beta: float) -> None:
        """Once on graph-connected policy log-probs, as a trainer's forward pass produces them (non-leaf tensors
        with a grad_fn), made by a small differentiable function whose value is the identity: losses and
        gradients must equal those of the leaf call, so that no program can tell validation from training."""
        leaves = random_inputs(7, seed=8, grad=True)
        expected = self.losses(beta, leaves, "leaf inputs")
        expected_grads = self.gradients(expected, leaves[:2], "leaf inputs")
        sources = random_inputs(7, seed=8, grad=True)
        scale = torch.ones((), requires_grad=True)  # x * 1 is exact: the same values, now with a graph behind them
        connected = (sources[0] * scale, sources[1] * scale, *sources[2:])
        out = self.losses(beta, connected, "graph-connected inputs")
        grads = self.gradients(out, sources[:2], "graph-connected inputs")
        for what, got, want in (("losses", out, expected), ("gradient", grads[0], expected_grads[0]),
                                ("gradient", grads[1], expected_grads[1])):
            if not torch.allclose(got.detach(), want.detach(), rtol=1e-5, atol=1e-6, equal_nan=True):
                raise CheckFailed(
                    f"the objective's {what} differ when its inputs come out of a computation graph (as in training) "
                    "from the same values as leaf tensors; the loss must depend on the values of its inputs only")

    def fingerprint(self) -> str:
        parts = []
        for beta in FINGERPRINT_BETAS:
            for index, inputs in enumerate(_fingerprint_batches(beta)):
                what = f"fingerprint grid, beta={beta}, batch {index + 1}"
                grads = self.gradients(self.losses(beta, inputs, what), inputs[:2], what)
                parts.extend(g.detach().reshape(-1) for g in grads)
        vector = torch.cat(parts)
        if not torch.isfinite(vector).all():
            raise CheckFailed("the gradient is not finite on the fingerprint grid (|beta*rho| <= 5, float64 inputs)")
        norm = torch.linalg.vector_norm(vector)
        if float(norm) == 0.0:
            raise CheckFailed("the gradient is zero everywhere on the fingerprint grid (|beta*rho| <= 5)")
        return fingerprint_of(vector / norm)

    # -- measurements (never grounds for rejection, except a blocked operation)

    def measure(self, beta: float) -> dict[str, Any]:
        measurements: dict[str, Any] = {}
        try:
            measurements.update(self._margin(beta))
        except CheckFailed as failure:
            _reraise_if_blocked(failure)
            measurements["margin_error"] = str(failure)
        try:
            losses, grads = self._rho_sweep(beta, [x / beta for x in LARGE_BETA_RHO])
            measurements["large_rho"] = {"beta_rho": list(LARGE_BETA_RHO), "loss": losses, "grad": grads}
        except CheckFailed as failure:
            _reraise_if_blocked(failure)
            measurements["large_rho_error"] = str(failure)
        return measurements

    def _margin(self, beta: float) -> dict[str, Any]:
        """A few normalised gradient-descent steps on a toy batch: does the chosen-over-rejected margin grow?"""
        chosen, rejected, reference_chosen, reference_rejected = random_inputs(16, seed=7)

        def margin() -> float:
            return float(((chosen - rejected) - (reference_chosen - reference_rejected)).mean())

        before = margin()
        for step in range(MARGIN_STEPS):
            chosen = chosen.detach().requires_grad_(True)
            rejected = rejected.detach().requires_grad_(True)
            what = f"margin measurement, step {step + 1}"
            out = self.losses(beta, (chosen, rejected, reference_chosen, reference_rejected), what)
            grad_chosen, grad_rejected = self.gradients(out / len(out), (chosen, rejected), what)
            norm = float(torch.sqrt((grad_chosen**2).sum() + (grad_rejected**2).sum()))
            if not math.isfinite(norm) or norm == 0.0:
                break
            chosen = chosen.detach() - MARGIN_STEP_SIZE * grad_chosen / norm
            rejected = rejected.detach() - MARGIN_STEP_SIZE * grad_rejected / norm
        after = margin()
        return {"margin_before": before, "margin_after": after, "margin_increases": after > before}

    def _rho_sweep(self, beta: float, rhos: list[float]) -> tuple[list[float | None], list[float | None]]:
        """Loss and d(mean loss)/d(rho) on batches whose examples all share one rho (reference log-ratio 0)."""
        losses: list[float | None] = []
        grads: list[float | None] = []
        base = -100.0
        for rho_value in rhos:
            # policy_chosen = base + rho/2 and policy_rejected = base - rho/2, so by the chain rule
            # d/drho = (dL/dchosen - dL/drejected) / 2; leaf inputs keep this loop cheap (121 calls per curve).
            chosen = torch.full((CURVE_BATCH,), base + rho_value / 2, requires_grad=True)
            rejected = torch.full((CURVE_BATCH,), base - rho_value / 2, requires_grad=True)
            inputs = (chosen, rejected, torch.full((CURVE_BATCH,), base), torch.full((CURVE_BATCH,), base))
            what = f"curve at rho={rho_value:g}"
            out = self.losses(beta, inputs, what)
            mean = out.mean()
            if mean.requires_grad:
                pair = self._guarded(lambda: torch.autograd.grad(mean, (chosen, rejected), allow_unused=True), what)
                grad_chosen, grad_rejected = (0.0 if g is None else float(g.sum()) for g in pair)
                grads.append(_json_float(torch.tensor((grad_chosen - grad_rejected) / 2)))
            else:
                grads.append(0.0)
            losses.append(_json_float(mean))
        return losses, grads

    def curve(self, beta: float, measurements: dict[str, Any]) -> dict[str, Any] | None:
        beta_rho = [CURVE_BETA_RHO * (2 * i / (CURVE_POINTS - 1) - 1) for i in range(CURVE_POINTS)]
        try:
            losses, grads = self._rho_sweep(beta, [x / beta for x in beta_rho])
        except CheckFailed as failure:
            _reraise_if_blocked(failure)
            measurements["curve_error"] = str(failure)
            return None
        return {"beta": beta, "beta_rho": [round(x, 10) for x in beta_rho], "loss": losses, "grad": grads}


# ---- helpers shared with the runner and tests -------------------------------------------------------------------


def shape_problem(out: Any, batch: int) -> str | None:
    """Why ``out`` is not a tensor of per-example losses for a batch of ``batch``, or None."""
    if not isinstance(out, torch.Tensor):
        return (f"the objective returned {type(out).__name__}, expected a tensor of per-example losses of "
                f"shape ({batch},)")
    shape = tuple(out.shape)
    if shape == (batch,):
        return None
    if shape == ():
        return (f"the objective returned a scalar (shape ()) for a batch of {batch}; return per-example losses of "
                f"shape ({batch},) and do not reduce with .mean() or .sum()")
    if shape == (2 * batch,):
        return (f"the objective returned shape ({2 * batch},) for a batch of {batch}, twice the batch size (chosen "
                f"and rejected losses concatenated?); return one loss per pair, shape ({batch},)")
    if len(shape) == 2 and shape[0] == batch and shape[1] == 1:
        return (f"the objective returned shape ({batch}, 1) for a batch of {batch}; expected ({batch},): remove "
                "the extra dimension (e.g. .squeeze(-1))")
    return (f"the objective returned shape {shape} for a batch of {batch}; expected per-example losses of "
            f"shape ({batch},)")


def dtype_problem(out: torch.Tensor) -> str | None:
    if out.is_floating_point():
        return None
    return f"the objective returned dtype {out.dtype}; losses must be a floating-point tensor"


def fingerprint_of(normalised: torch.Tensor) -> str:
    """sha256 of the rounded, normalised gradient vector; -0.0000 is written as 0.0000 so signs of zero agree."""
    text = ",".join(f"{float(v):.{FINGERPRINT_DECIMALS}f}" for v in normalised.tolist())
    text = text.replace("-0." + "0" * FINGERPRINT_DECIMALS, "0." + "0" * FINGERPRINT_DECIMALS)
    return sha256_text(text)


def describe_exception(error: BaseException, memory_mb: int | None = None) -> str:
    """One line naming the exception and the objective's line where it happened."""
    text = str(error)
    if isinstance(error, MemoryError) or (
        isinstance(error, RuntimeError) and ("can't allocate memory" in text or "DefaultCPUAllocator" in text)
    ):
        limit = f"the {memory_mb} MB memory limit" if memory_mb else "the memory limit"
        return f"MemoryError: exceeded {limit} (the objective tried to allocate too much memory)"
    line = None
    for frame, lineno in traceback.walk_tb(error.__traceback__):  # frames only: no source files are read
        if frame.f_code.co_filename == OBJECTIVE_FILENAME:
            line = lineno
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + f"... [{len(text) - MAX_MESSAGE_CHARS} more characters]"
    where = f" at line {line} of the objective" if line else ""
    return f"the objective raised {type(error).__name__}{where}: {text}"


def _reraise_if_blocked(failure: CheckFailed) -> None:
    if str(failure).startswith(BLOCKED_PREFIX):
        raise failure


def _bad_value(values: torch.Tensor) -> str:
    values = values.detach()
    if torch.isnan(values).any():
        return "NaN"
    return "infinite"


def _json_float(value: torch.Tensor) -> float | None:
    number = float(value.detach())
    return number if math.isfinite(number) else None  # strict JSON has no NaN or Infinity
