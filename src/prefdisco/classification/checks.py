"""Property checks on a classification objective. Runs inside the sandbox child, never in the orchestrator.

The same checks, in the same order and under the same names, as for preference objectives
(:mod:`prefdisco.sandbox.checks`, whose guard, messages and fingerprint hashing are reused), on this contract's
inputs: logits (B, C) and targets (B,).

* ordinary inputs: seeded logits of scale 3 (a classifier some way into training), C = 10 classes;
* output shape over batch sizes 7, 2, 64, 1 and C in 10 and 5;
* extreme inputs: logits up to +-1000, confidently right and confidently wrong rows: a loss written as
  log(softmax(.)) underflows to -inf there, a stable one (F.log_softmax, F.cross_entropy) does not;
* the fingerprint: float64 gradients with respect to the logits over 4 fixed batches built from formulas (not a
  random generator, so it stays stable across torch versions), normalised by their L2 norm (a positive scale
  factor and an added constant do not change it), rounded to 4 decimals and hashed;
* the curve: loss and its derivative against the target's logit margin m in [-10, 10] (logits [m, 0, ..., 0],
  C = 10, target 0), for the shapes figure.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch

from prefdisco.classification.objectives import CONTRACT_ARGUMENTS
from prefdisco.sandbox import checks as shared
from prefdisco.sandbox.checks import (
    MEASUREMENT_STAGE,
    CheckFailed,
    Guard,
    NullGuard,
    _bad_value,
    _json_float,
    _no_violations,
    _reraise_if_blocked,
    _stage,
    dtype_problem,
    empty_result,
    fingerprint_of,
    shape_problem,
)
from prefdisco.sandbox.loader import compile_objective
from prefdisco.sandbox.static_policy import PolicyViolation

CHECK_NAMES = shared.CHECK_NAMES
INPUT_NAMES = ("logits",)  # targets are integers: no gradient, but in-place changes are still caught
CLASSES = 10
BATCH_SIZES = (7, 2, 64, 1)  # 7 first: the most telling messages come from a typical batch
CLASS_COUNTS = (10, 5)
ORDINARY_SCALE = 3.0
EXTREME_LOGIT = 1000.0
CURVE_POINTS = 121
CURVE_MARGIN = 10.0

Inputs = tuple[torch.Tensor, torch.Tensor]


def run_checks(
    code: str,
    beta: float = 1.0,
    guard: Guard | None = None,
    progress: Callable[[str], None] | None = None,
    memory_mb: int | None = None,
) -> dict[str, Any]:
    """Load ``code`` and run every check; the JSON-ready part of a validation record. ``beta`` is unused (the
    signature is the shared one the sandbox runner calls)."""
    guard = guard or NullGuard()
    progress = progress or (lambda stage: None)
    result = empty_result()
    checks = result["checks"]
    state: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            name, compiled = _stage(progress, checks, "static_policy", lambda: _static_policy(code))
            candidate = _stage(progress, checks, "loads", lambda: _Candidate(name, compiled, guard, memory_mb))
            for stage, check in (
                ("no_input_mutation", candidate.check_no_input_mutation),
                ("output_shape", lambda: candidate.check_output_shape(result["measurements"])),
                ("float_dtype", candidate.check_float_dtype),
                ("finite_loss", candidate.check_finite_loss),
                ("has_gradient", lambda: state.update(grad=candidate.check_has_gradient())),
                ("finite_gradient", lambda: candidate.check_finite_gradient(state["grad"])),
                ("finite_at_extremes", candidate.check_finite_at_extremes),
                ("deterministic", candidate.check_deterministic),
                ("graph_inputs", candidate.check_graph_inputs),
                ("fingerprint", lambda: state.update(fingerprint=candidate.fingerprint())),
            ):
                _stage(progress, checks, stage, check)
            result["fingerprint"] = state["fingerprint"]
            progress(MEASUREMENT_STAGE)
            result["measurements"].update(candidate.measure())
            result["curve"] = candidate.curve(result["measurements"])
            _stage(progress, checks, "no_blocked_operations", lambda: _no_violations(guard))
            result["valid"] = True
        except CheckFailed as failure:
            result["error"] = str(failure)
            if "fail" not in checks.values():
                checks["no_blocked_operations"] = "fail"
            result["fingerprint"] = None
            result["curve"] = None
        messages = sorted({str(w.message)[:200] for w in caught})
    if messages:
        result["measurements"]["warnings"] = messages[:shared.MAX_WARNINGS]
    return result


def _static_policy(code: str) -> Any:
    try:
        return compile_objective(code, CONTRACT_ARGUMENTS)
    except PolicyViolation as violation:
        raise CheckFailed(str(violation)) from None


# ---- inputs -------------------------------------------------------------------------------------------------


def random_inputs(batch: int, classes: int = CLASSES, seed: int = 0, dtype: torch.dtype = torch.float32,
                  grad: bool = False) -> Inputs:
    """Ordinary logits (scale 3) and targets, seeded."""
    generator = torch.Generator().manual_seed(1000 * seed + 10 * batch + classes)
    logits = ORDINARY_SCALE * torch.randn(batch, classes, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, classes, (batch,), generator=generator)
    return logits.to(dtype).requires_grad_(grad), targets


def _extreme_batches() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(description, logits, targets): confidently right, confidently wrong and mixed rows at +-1000."""
    big = EXTREME_LOGIT
    classes = torch.arange(CLASSES, dtype=torch.float64)
    right = torch.full((3, CLASSES), -big, dtype=torch.float64)
    right[:, 0] = big
    wrong = torch.full((3, CLASSES), -big, dtype=torch.float64)
    wrong[:, 1] = big
    mixed = big * torch.sin(classes[None, :] * 1.3 + torch.arange(5, dtype=torch.float64)[:, None])
    return [
        ("confidently right rows", right, torch.zeros(3, dtype=torch.long)),
        ("confidently wrong rows", wrong, torch.zeros(3, dtype=torch.long)),
        ("mixed rows", mixed, torch.arange(5) % CLASSES),
    ]


def _fingerprint_batches() -> list[Inputs]:
    batches = []
    for rows, classes, scale in ((6, 10, 2.0), (4, 3, 5.0), (5, 10, 0.5), (3, 5, 8.0)):
        i = torch.arange(rows, dtype=torch.float64)[:, None]
        j = torch.arange(classes, dtype=torch.float64)[None, :]
        logits = scale * torch.sin(1.7 * i + 0.9 * j + 0.3 * i * j)
        targets = (torch.arange(rows) * 3 + 1) % classes
        batches.append((logits.requires_grad_(True), targets))
    return batches


# ---- the candidate under test ---------------------------------------------------------------------------------


class _Candidate(shared._Candidate):
    def call(self, inputs: Inputs, what: str) -> Any:  # type: ignore[override]
        return self._guarded(lambda: self.function(*inputs), what)

    def losses(self, inputs: Inputs, what: str) -> torch.Tensor:  # type: ignore[override]
        out = self.call(inputs, what)
        problem = shape_problem(out, len(inputs[1])) or dtype_problem(out)
        if problem:
            raise CheckFailed(f"{problem} ({what})")
        return out

    def gradient(self, losses: torch.Tensor, logits: torch.Tensor, what: str) -> torch.Tensor:
        if not losses.requires_grad:
            raise CheckFailed(
                f"the losses do not depend differentiably on the logits ({what}): no gradient flows (e.g. .detach(), "
                ".item(), argmax, comparisons or .float() of a boolean); training needs one"
            )
        (grad,) = self._guarded(
            lambda: torch.autograd.grad(losses.sum(), (logits,), allow_unused=True), f"computing gradients, {what}"
        )
        return torch.zeros_like(logits) if grad is None else grad

    # -- checks

    def check_no_input_mutation(self) -> None:
        inputs = random_inputs(7, seed=1)
        before = [t.clone() for t in inputs]
        versions = [t._version for t in inputs]  # in-place ops bump the version even when values survive
        self.call(inputs, "on ordinary inputs")
        for name, tensor, original, version in zip(CONTRACT_ARGUMENTS, inputs, before, versions):
            if tensor._version != version or not torch.equal(tensor, original):
                raise CheckFailed(
                    f"the objective modified its input '{name}' in place (e.g. .add_(), .mul_() or item "
                    "assignment); compute new tensors instead"
                )

    def check_output_shape(self, measurements: dict[str, Any]) -> None:
        for classes in CLASS_COUNTS:
            for batch in BATCH_SIZES:
                out = self.call(random_inputs(batch, classes, seed=2), f"batch size {batch}, {classes} classes")
                problem = shape_problem(out, batch)
                if problem:
                    if isinstance(out, torch.Tensor) and tuple(out.shape) == (batch, classes):
                        problem += "; it has one value per class: pick the target's entry or sum over classes"
                    raise CheckFailed(problem)
                if batch == 1 and classes == CLASSES:
                    measurements["finite_at_batch_size_1"] = bool(torch.isfinite(out.detach()).all())

    def check_float_dtype(self) -> None:
        problem = dtype_problem(self.call(random_inputs(7, seed=3), "on ordinary inputs"))
        if problem:
            raise CheckFailed(problem)

    def check_finite_loss(self) -> None:
        out = self.losses(random_inputs(8, seed=4), "ordinary inputs")
        if not torch.isfinite(out).all():
            raise CheckFailed(f"the loss is {_bad_value(out)} on ordinary inputs; losses must be finite")

    def check_has_gradient(self) -> torch.Tensor:
        logits, targets = random_inputs(8, seed=5, grad=True)
        grad = self.gradient(self.losses((logits, targets), "ordinary inputs"), logits, "ordinary inputs")
        if not bool((grad != 0).any()):
            raise CheckFailed(
                "the gradient of the loss with respect to the logits is identically zero on ordinary inputs (e.g. "
                "rounding, argmax or a step function); training would not move the classifier"
            )
        return grad

    def check_finite_gradient(self, grad: torch.Tensor) -> None:
        if not torch.isfinite(grad).all():
            raise CheckFailed(f"the gradient with respect to the logits is {_bad_value(grad)} on ordinary inputs")

    def check_finite_at_extremes(self) -> None:
        for description, logits, targets in _extreme_batches():
            logits = logits.float().requires_grad_(True)
            what = f"{description} with logits up to +-{EXTREME_LOGIT:g}"
            out = self.losses((logits, targets), what)
            grad = self.gradient(out, logits, what)
            for label, values in (("loss", out), ("gradient", grad)):
                if not torch.isfinite(values.detach()).all():
                    raise CheckFailed(
                        f"the {label} is {_bad_value(values)} on {description}; losses and gradients must stay "
                        f"finite for logits up to +-{EXTREME_LOGIT:g} (use numerically stable forms such as "
                        "F.log_softmax or F.cross_entropy, not log(softmax(.)))"
                    )

    def check_deterministic(self) -> None:
        inputs = random_inputs(7, seed=6)
        first = self.losses(inputs, "determinism, first call")
        second = self.losses(inputs, "determinism, second call")
        if not torch.equal(first, second):
            raise CheckFailed("the objective returned different losses for the same inputs (randomness such as "
                              "torch.rand or dropout is not allowed); it must be a deterministic function")

    def check_graph_inputs(self) -> None:
        """Once on graph-connected logits, as a model's forward pass produces them (a non-leaf tensor with a
        grad_fn, here x * 1): losses and gradient must equal those of the leaf call, so that no program can tell
        validation from training."""
        leaves = random_inputs(7, seed=8, grad=True)
        expected = self.losses(leaves, "leaf logits")
        expected_grad = self.gradient(expected, leaves[0], "leaf logits")
        source, targets = random_inputs(7, seed=8, grad=True)
        scale = torch.ones((), dtype=source.dtype, requires_grad=True)
        out = self.losses((source * scale, targets), "graph-connected logits")
        grad = self.gradient(out, source, "graph-connected logits")
        for what, got, want in (("losses", out, expected), ("gradient", grad, expected_grad)):
            if not torch.allclose(got.detach(), want.detach(), rtol=1e-5, atol=1e-6, equal_nan=True):
                raise CheckFailed(
                    f"the objective's {what} differ when its logits come out of a computation graph (as in training) "
                    "from the same values as a leaf tensor; the loss must depend on the values of its inputs only")

    def fingerprint(self) -> str:
        parts = []
        for index, (logits, targets) in enumerate(_fingerprint_batches()):
            what = f"fingerprint grid, batch {index + 1}"
            parts.append(self.gradient(self.losses((logits, targets), what), logits, what).detach().reshape(-1))
        vector = torch.cat(parts)
        if not torch.isfinite(vector).all():
            raise CheckFailed("the gradient is not finite on the fingerprint grid (float64 logits up to +-8)")
        norm = torch.linalg.vector_norm(vector)
        if float(norm) == 0.0:
            raise CheckFailed("the gradient is zero everywhere on the fingerprint grid")
        return fingerprint_of(vector / norm)

    # -- measurements (never grounds for rejection, except a blocked operation)

    def measure(self) -> dict[str, Any]:
        measurements: dict[str, Any] = {}
        try:
            uniform = torch.zeros(1, CLASSES)
            target = torch.zeros(1, dtype=torch.long)
            right = torch.full((1, CLASSES), -5.0)
            right[0, 0] = 5.0
            wrong = torch.full((1, CLASSES), -5.0)
            wrong[0, 1] = 5.0
            for key, logits in (("loss_uniform", uniform), ("loss_confident_right", right),
                                ("loss_confident_wrong", wrong)):
                measurements[key] = _json_float(self.losses((logits, target), f"measurement {key}")[0])
        except CheckFailed as failure:
            _reraise_if_blocked(failure)
            measurements["loss_error"] = str(failure)
        return measurements

    def curve(self, measurements: dict[str, Any]) -> dict[str, Any] | None:
        margins = [CURVE_MARGIN * (2 * i / (CURVE_POINTS - 1) - 1) for i in range(CURVE_POINTS)]
        losses: list[float | None] = []
        grads: list[float | None] = []
        try:
            for margin in margins:
                value = torch.tensor(margin, requires_grad=True)
                logits = torch.cat([value.reshape(1), torch.zeros(CLASSES - 1)]).reshape(1, CLASSES)
                out = self.losses((logits, torch.zeros(1, dtype=torch.long)), f"curve at margin {margin:g}")
                grads.append(_json_float(self.gradient(out, value, f"curve at margin {margin:g}"))
                             if out.requires_grad else 0.0)
                losses.append(_json_float(out[0]))
        except CheckFailed as failure:
            _reraise_if_blocked(failure)
            measurements["curve_error"] = str(failure)
            return None
        return {"classes": CLASSES, "margin": [round(m, 10) for m in margins], "loss": losses, "grad": grads}
