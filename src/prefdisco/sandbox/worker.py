"""The confined objective worker: the only place candidate code runs during training, for every objective family.

An objective is a function of a few tensors the trainer computes, so the trainer needs only its per-example
losses and their gradients with respect to the differentiable inputs. One worker process per training job (per
rank under multi-GPU) computes those; the trainer applies them through a surrogate (``sum(grad * input)``, whose
parameter gradient is the candidate's mean loss's). The worker never sees the model, the optimizer, the logged
metrics or the run's files. It serves either family's contract, fixed by the trainer on the worker's command line
(``--family``) before any candidate code is read:

* preference: four log-prob vectors (the reference ones constant) -> losses; gradients with respect to the two
  policy vectors (trainer.py);
* classification: ``(logits (B, C), targets (B,))`` -> losses; gradients with respect to the logits
  (classification/train.py).

The worker is a fresh interpreter (``python -m prefdisco.sandbox.worker``), not a fork of the trainer, whose
OpenMP and torch threads a fork would inherit half-initialised. It imports everything it needs, then confines
itself exactly as the validation child does (``runner.confine``: fds 0-2 to /dev/null and every other fd
closed, one torch thread, no network namespace, Landlock, nobody, RLIMIT_AS/FSIZE/NPROC/CORE, RLIMIT_CPU per
call), loads the candidate with the constrained loader (the static policy with the family's contract included)
and serves calls over a pipe with the audit hook armed around each one, forward and backward. The checks on a
result (shape (B,), floating dtype, a gradient that flows, finite losses and gradients) are the same for both.

Protocol (little-endian; the parent trusts nothing it reads and caps every length):

* parent -> worker, once: ``<I`` code length, then the code (UTF-8);
* worker -> parent, once, before reading the code: one byte ``C`` (confined). A worker that dies before it is
  a fault of the workflow, after it a failure of the candidate;
* worker -> parent, once: a reply to loading (status 0 and no values, or an error);
* parent -> worker, per call, preference: ``<Id`` batch size B and beta, then 4*B float64 (policy chosen, policy
  rejected, reference chosen, reference rejected);
* parent -> worker, per call, classification: ``<II`` batch size B and classes C, then B*C float32 logits (row
  by row) and B int64 targets;
* worker -> parent, per call: ``<BI`` status and byte count, then, for status 0, the values: preference, 3*B
  float64 (per-example losses, d(mean loss)/d(policy chosen), d(mean loss)/d(policy rejected)); classification,
  B float32 per-example losses then B*C float32 d(mean loss)/d(logits); for status 1, that many bytes of UTF-8
  error text. The parent expects exactly the byte count its own request implies. End of input: the worker exits.

Preference values are float64 (sums of many token log-probs); classification values are float32, the classifier's
own dtype and the one validation checks ordinary logits in, so a candidate meets the same dtype in training as in
its checks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Callable

import torch
import torch.nn.functional  # noqa: F401 -- loaded before confinement: the worker never imports afterwards

from prefdisco import objectives as preference_objectives
from prefdisco.classification import objectives as classification_objectives
from prefdisco.errors import CandidateError, truncate_error
from prefdisco.sandbox import checks
from prefdisco.sandbox.audit import AuditGuard
from prefdisco.sandbox.loader import ObjectiveContext, compile_objective, define_objective
from prefdisco.sandbox.runner import SandboxLimits, confine

CODE_HEADER = struct.Struct("<I")
REQUEST_HEADER = struct.Struct("<Id")  # preference: batch size, beta
CLASSIFICATION_HEADER = struct.Struct("<II")  # classification: batch size, classes
REPLY_HEADER = struct.Struct("<BI")
CONFINED = b"C"
OK, ERROR = 0, 1
MAX_BATCH = 1 << 20  # pairs (or examples) per call; far above any per-device batch
MAX_LOGITS = 1 << 26  # B*C per classification call (256 MB of float32); far above any batch of logits
MAX_ERROR_BYTES = 8192  # an error reply above this is a misbehaving worker: killed, not read
STARTUP_SECONDS = 300.0  # importing torch on a loaded machine; candidate code has not run yet
FLOAT64, FLOAT32, INT64 = 8, 4, 8
# Each family's contract: the argument list the static policy holds the candidate to.
CONTRACTS = {"preference": preference_objectives.CONTRACT_ARGUMENTS,
             "classification": classification_objectives.CONTRACT_ARGUMENTS}

Loader = Callable[[str, AuditGuard, tuple[str, ...]], Callable]


# ---- trainer side ---------------------------------------------------------------------------------------------


class ObjectiveWorker:
    """A confined worker process serving one candidate objective of one family to one trainer process.

    ``family`` (``preference`` or ``classification``) fixes the contract the candidate is loaded under and the
    one call method that serves it: ``evaluate`` (preference) returns (losses, d mean/d policy_chosen,
    d mean/d policy_rejected) as float64 CPU tensors; ``evaluate_classification`` returns (losses,
    d mean/d logits) on the logits' device and dtype. Either raises CandidateError with a short reason: the
    candidate's own error, a signal name, "timed out after N s", a non-finite or malformed result. After a
    failure the worker is gone and every later call raises too. ``limits`` bind each call (the config's
    ``sandbox`` section). ``command`` replaces the worker's command line (tests only: a worker without the
    static policy).
    """

    def __init__(self, code: str, limits: SandboxLimits = SandboxLimits(), command: list[str] | None = None,
                 family: str = "preference") -> None:
        if family not in CONTRACTS:
            raise ValueError(f"family: {family!r} is not one of {', '.join(CONTRACTS)}")
        self.code = code
        self.limits = limits
        self.family = family
        self.command = command or [sys.executable, "-m", "prefdisco.sandbox.worker"]
        self.process: subprocess.Popen | None = None
        self.workdir: str | None = None
        self.failure: str | None = None
        self.loaded = False
        self.calls = 0

    def __enter__(self) -> "ObjectiveWorker":
        self.start()
        return self

    def __exit__(self, kind: type | None, value: BaseException | None, traceback: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Start the process and hand it the code; loading is awaited by the first call, so the worker starts
        while the trainer loads its model."""
        self.workdir = tempfile.mkdtemp(prefix="prefdisco-worker-")
        environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [*self.command, "--limits", json.dumps(self.limits.__dict__), "--workdir", self.workdir,
             "--family", self.family],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, env=environment,
        )
        for stream in (self.process.stdin, self.process.stdout):
            os.set_blocking(stream.fileno(), False)
        code = self.code.encode("utf-8", errors="replace")
        self._write(CODE_HEADER.pack(len(code)) + code, time.monotonic() + STARTUP_SECONDS, "starting")

    def close(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
            self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def evaluate(self, beta: float, policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
                 reference_chosen: torch.Tensor, reference_rejected: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A preference call: per-example losses and d(mean loss)/d(each policy vector), float64 on the CPU."""
        self._ready("preference")
        batch = policy_chosen.numel()
        vectors = torch.stack([t.detach().reshape(-1).to("cpu", torch.float64)
                               for t in (policy_chosen, policy_rejected, reference_chosen, reference_rejected)])
        deadline = time.monotonic() + self.limits.wall_seconds
        self._write(REQUEST_HEADER.pack(batch, float(beta)) + vectors.numpy().tobytes(), deadline, "a call")
        payload = self._reply(deadline, "a call", expected=3 * batch * FLOAT64)
        self.calls += 1
        values = torch.frombuffer(bytearray(payload), dtype=torch.float64).reshape(3, batch)
        losses, grad_chosen, grad_rejected = values
        self._check_finite(losses, values[1:], "the policy log-probabilities")
        return losses, grad_chosen, grad_rejected

    def evaluate_classification(self, logits: torch.Tensor, targets: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor]:
        """A classification call: per-example losses (B,) and d(mean loss)/d(logits) (B, C), on the logits'
        device and in their dtype (computed in float32)."""
        self._ready("classification")
        if logits.dim() != 2 or tuple(targets.shape) != (logits.shape[0],):
            raise ValueError(f"expected logits (B, C) and targets (B,), got {tuple(logits.shape)} and "
                             f"{tuple(targets.shape)}")
        batch, classes = logits.shape
        request = (CLASSIFICATION_HEADER.pack(batch, classes)
                   + logits.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
                   + targets.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
        deadline = time.monotonic() + self.limits.wall_seconds
        self._write(request, deadline, "a call")
        payload = self._reply(deadline, "a call", expected=(batch + batch * classes) * FLOAT32)
        self.calls += 1
        values = torch.frombuffer(bytearray(payload), dtype=torch.float32)
        losses, grads = values[:batch], values[batch:].reshape(batch, classes)
        self._check_finite(losses, grads, "the logits")
        return losses.to(logits.device, logits.dtype), grads.to(logits.device, logits.dtype)

    def _ready(self, family: str) -> None:
        if self.family != family:
            raise RuntimeError(f"this objective worker serves the {self.family} contract, not {family}")
        if self.failure is not None:
            raise CandidateError(self.failure)
        if self.process is None:
            raise RuntimeError("the objective worker was not started")
        if not self.loaded:
            self._await_load()

    def _check_finite(self, losses: torch.Tensor, gradients: torch.Tensor, inputs: str) -> None:
        if not torch.isfinite(losses).all():
            raise self._fail(f"non-finite loss ({losses.mean().item()})")
        if not torch.isfinite(gradients).all():
            raise self._fail(f"non-finite gradient with respect to {inputs}")

    # -- pipe handling; any breach kills the worker and turns into the candidate's failure

    def _await_load(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        if self._read(1, deadline, "starting", confined=False) != CONFINED:
            raise self._fault("the objective worker sent an unexpected greeting")
        self._reply(time.monotonic() + self.limits.wall_seconds, "loading the objective", expected=0)
        self.loaded = True

    def _reply(self, deadline: float, what: str, expected: int) -> bytes:
        status, count = REPLY_HEADER.unpack(self._read(REPLY_HEADER.size, deadline, what))
        if status == ERROR:
            if count > MAX_ERROR_BYTES:
                raise self._fail(f"the objective worker sent an oversized error ({count} bytes) during {what}")
            raise self._fail(self._read(count, deadline, what).decode("utf-8", errors="replace"))
        if status != OK or count != expected:
            raise self._fail(f"the objective worker sent a malformed reply ({count} bytes where {expected} were "
                             f"expected) during {what}")
        return self._read(count, deadline, what)

    def _write(self, data: bytes, deadline: float, what: str) -> None:
        view = memoryview(data)
        fd = self.process.stdin.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_WRITE)
            while view:
                if not selector.select(max(0.0, deadline - time.monotonic())):
                    raise self._timeout(what)
                try:
                    written = os.write(fd, view)
                except BlockingIOError:
                    continue
                except BrokenPipeError:
                    raise self._died(what) from None
                view = view[written:]

    def _read(self, size: int, deadline: float, what: str, confined: bool = True) -> bytes:
        buffer = bytearray()
        fd = self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while len(buffer) < size:
                if not selector.select(max(0.0, deadline - time.monotonic())):
                    raise self._timeout(what) if confined else self._fault("the objective worker did not start "
                                                                            f"within {STARTUP_SECONDS:g} s")
                try:
                    chunk = os.read(fd, size - len(buffer))
                except BlockingIOError:
                    continue
                if not chunk:
                    raise self._died(what) if confined else self._fault(
                        f"the objective worker exited before confining itself ({self._exit_description()}); "
                        "see the log above for its error")
                buffer.extend(chunk)
        return bytes(buffer)

    def _timeout(self, what: str) -> CandidateError:
        return self._fail(f"the objective timed out after {self.limits.wall_seconds:g} s during {what} "
                          "(possible infinite loop)")

    def _died(self, what: str) -> CandidateError:
        return self._fail(f"the objective worker {self._exit_description()} during {what}")

    def _exit_description(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
            return "closed its pipe and was killed"
        if code >= 0:
            return f"exited with status {code}"
        number = -code
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if number == signal.SIGXCPU:
            return f"was killed by SIGXCPU: exceeded the {self.limits.cpu_seconds} CPU-second limit of one call"
        if number == signal.SIGKILL:
            return (f"was killed by SIGKILL (the {self.limits.memory_mb} MB memory limit or the "
                    f"{self.limits.cpu_seconds} CPU-second limit of one call)")
        return f"crashed with signal {name}"

    def _fail(self, message: str) -> CandidateError:
        self.failure = truncate_error(message)
        self.close()
        return CandidateError(self.failure)

    def _fault(self, message: str) -> RuntimeError:
        self.close()
        return RuntimeError(message)


# ---- worker side ----------------------------------------------------------------------------------------------


def load_checked(code: str, guard: AuditGuard, arguments: tuple[str, ...]) -> Callable:
    """The constrained loader, static policy (with the contract's ``arguments``) included; the definition runs
    armed (annotations are candidate expressions), with the one 'exec' event it needs allowed."""
    name, compiled = compile_objective(code, arguments)
    with guard.armed(frozenset({"exec"})):
        return define_objective(name, compiled)


class BadRequest(Exception):
    """A request outside the protocol's caps: answered with an error, then the worker exits."""


def serve(read_fd: int, write_fd: int, limits: SandboxLimits, load: Loader, family: str = "preference") -> None:
    """Load the candidate under ``family``'s contract, then answer calls until the parent closes the pipe."""
    guard = AuditGuard()
    answer = {"preference": _answer_preference, "classification": _answer_classification}[family]
    _send(write_fd, CONFINED)
    (size,) = CODE_HEADER.unpack(_receive(read_fd, CODE_HEADER.size))
    code = _receive(read_fd, size).decode("utf-8", errors="replace")
    _allow_cpu(limits)
    try:
        function = load(code, guard, CONTRACTS[family])
    except BaseException as error:  # noqa: BLE001 -- the candidate's failure, reported
        _send_error(write_fd, _describe(error, guard, 0, limits, "loading the objective"))
        return
    if guard.violations:
        _send_error(write_fd, f"{checks.BLOCKED_PREFIX}: {guard.violations[0]}")
        return
    _send(write_fd, REPLY_HEADER.pack(OK, 0))
    while True:
        try:
            reply = answer(read_fd, function, guard, limits)
        except BadRequest as error:
            _send_error(write_fd, str(error))
            return
        if reply is None:
            return
        if isinstance(reply, str):
            _send_error(write_fd, reply)
        else:
            data = reply.numpy().tobytes()
            _send(write_fd, REPLY_HEADER.pack(OK, len(data)) + data)


def _answer_preference(read_fd: int, function: Callable, guard: AuditGuard,
                       limits: SandboxLimits) -> torch.Tensor | str | None:
    """Read one preference request and run it: the reply's values, an error, or None at end of input."""
    header = _receive(read_fd, REQUEST_HEADER.size, eof_ok=True)
    if header is None:
        return None
    batch, beta = REQUEST_HEADER.unpack(header)
    if not 0 < batch <= MAX_BATCH or not math.isfinite(beta):
        raise BadRequest(f"bad request: batch {batch}, beta {beta}")
    vectors = torch.frombuffer(bytearray(_receive(read_fd, 4 * batch * FLOAT64)), dtype=torch.float64)
    _allow_cpu(limits)
    return call(function, guard, beta, vectors.reshape(4, batch), limits)


def _answer_classification(read_fd: int, function: Callable, guard: AuditGuard,
                           limits: SandboxLimits) -> torch.Tensor | str | None:
    """Read one classification request and run it: the reply's values, an error, or None at end of input."""
    header = _receive(read_fd, CLASSIFICATION_HEADER.size, eof_ok=True)
    if header is None:
        return None
    batch, classes = CLASSIFICATION_HEADER.unpack(header)
    if not (0 < batch <= MAX_BATCH and 0 < classes and batch * classes <= MAX_LOGITS):
        raise BadRequest(f"bad request: batch {batch}, classes {classes}")
    logits = torch.frombuffer(bytearray(_receive(read_fd, batch * classes * FLOAT32)), dtype=torch.float32)
    targets = torch.frombuffer(bytearray(_receive(read_fd, batch * INT64)), dtype=torch.int64)
    _allow_cpu(limits)
    return call_classification(function, guard, logits.reshape(batch, classes), targets, limits)


def call(function: Callable, guard: AuditGuard, beta: float, vectors: torch.Tensor,
         limits: SandboxLimits) -> torch.Tensor | str:
    """One preference call on float64 leaf tensors built here: the (3, B) losses and gradients, or an error."""
    batch = vectors.shape[1]
    policy_chosen, policy_rejected, reference_chosen, reference_rejected = (v.clone() for v in vectors)
    policy_chosen.requires_grad_(True)
    policy_rejected.requires_grad_(True)
    result = _run(function, (ObjectiveContext(beta), policy_chosen, policy_rejected, reference_chosen,
                             reference_rejected), (policy_chosen, policy_rejected), batch, guard, limits,
                  "the policy log-probabilities")
    if isinstance(result, str):
        return result
    out, (grad_chosen, grad_rejected) = result
    return torch.stack([out.to(torch.float64), grad_chosen.to(torch.float64), grad_rejected.to(torch.float64)])


def call_classification(function: Callable, guard: AuditGuard, logits: torch.Tensor, targets: torch.Tensor,
                        limits: SandboxLimits) -> torch.Tensor | str:
    """One classification call on float32 logits (a leaf built here) and int64 targets: the B losses followed by
    the B*C gradients of their mean with respect to the logits, or an error."""
    logits = logits.clone().requires_grad_(True)
    result = _run(function, (logits, targets), (logits,), len(targets), guard, limits, "the logits")
    if isinstance(result, str):
        return result
    out, (grad,) = result
    return torch.cat([out.to(torch.float32), grad.to(torch.float32).reshape(-1)])


def _run(function: Callable, arguments: tuple, leaves: tuple[torch.Tensor, ...], batch: int, guard: AuditGuard,
         limits: SandboxLimits, inputs: str) -> tuple[torch.Tensor, list[torch.Tensor]] | str:
    """Call the candidate and differentiate the mean of its losses, armed throughout: (losses, gradients with
    respect to ``leaves``, zero where unused), both detached, or the reason the result is refused."""
    seen = len(guard.violations)
    try:
        with guard.armed():
            out = function(*arguments)
            problem = checks.shape_problem(out, batch) or checks.dtype_problem(out)
            if problem is None and not out.requires_grad:
                problem = (f"the losses do not depend differentiably on {inputs} (e.g. .detach(), .item() or "
                           "argmax): no gradient flows")
            if problem is None:
                gradients = torch.autograd.grad(out.mean(), leaves, allow_unused=True)
    except BaseException as error:  # noqa: BLE001 -- anything the candidate raises is its failure
        return _describe(error, guard, seen, limits, "an objective call")
    if len(guard.violations) > seen:  # blocked inside torch code that swallowed the exception
        return f"{checks.BLOCKED_PREFIX}: {guard.violations[seen]}"
    if problem is not None:
        return problem
    return out.detach(), [torch.zeros_like(leaf) if g is None else g.detach() for leaf, g in zip(leaves, gradients)]


def _describe(error: BaseException, guard: AuditGuard, seen: int, limits: SandboxLimits, what: str) -> str:
    if len(guard.violations) > seen:
        return f"{checks.BLOCKED_PREFIX}: {guard.violations[seen]}"
    return f"{checks.describe_exception(error, limits.memory_mb)} ({what})"


def _cpu_limit(limits: SandboxLimits) -> tuple[int, int]:
    """RLIMIT_CPU counts the whole process's life (importing torch included): the soft limit goes cpu_seconds past
    what is used now; the hard one stays open, since the trainer's wall clock bounds the job as a whole."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return math.ceil(usage.ru_utime + usage.ru_stime) + limits.cpu_seconds, resource.RLIM_INFINITY


def _allow_cpu(limits: SandboxLimits) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, _cpu_limit(limits))


def _send_error(fd: int, message: str) -> None:
    data = truncate_error(message).encode("utf-8", errors="replace")[:MAX_ERROR_BYTES]
    _send(fd, REPLY_HEADER.pack(ERROR, len(data)) + data)


def _send(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _receive(fd: int, size: int, eof_ok: bool = False) -> bytes | None:
    buffer = bytearray()
    while len(buffer) < size:
        chunk = os.read(fd, size - len(buffer))
        if not chunk:
            if eof_ok and not buffer:
                return None
            raise EOFError("the trainer closed the pipe mid-message")
        buffer.extend(chunk)
    return bytes(buffer)


def main(argv: list[str] | None = None, load: Loader = load_checked) -> None:
    parser = argparse.ArgumentParser(description="confined objective worker (started by the trainer)")
    parser.add_argument("--limits", type=json.loads, required=True, help="SandboxLimits as JSON")
    parser.add_argument("--workdir", type=Path, required=True, help="an empty directory, its only writable place")
    parser.add_argument("--family", choices=sorted(CONTRACTS), default="preference",
                        help="the objective family whose contract the candidate is loaded under and served by")
    args = parser.parse_args(argv)
    limits = SandboxLimits(**args.limits)
    read_fd, write_fd = confine(limits, (0, 1), str(args.workdir), cpu_limit=_cpu_limit(limits))
    status = 0
    try:
        serve(read_fd, write_fd, limits, load, args.family)
    except BaseException:  # noqa: BLE001 -- the trainer sees the closed pipe and the exit status
        status = 1
    finally:
        os._exit(status)  # no atexit handlers or finalizers run after candidate code


if __name__ == "__main__":
    main()
