"""The confined objective worker: the only place candidate code runs during training.

An objective is a function of four log-prob vectors (the reference ones constant), so the trainer needs only its
per-example losses and their gradients with respect to the two policy vectors. One worker process per training
job (per rank under multi-GPU) computes those; the trainer applies them through a surrogate (trainer.py). The
worker never sees the model, the optimizer, the logged metrics or the run's files.

The worker is a fresh interpreter (``python -m prefdisco.sandbox.worker``), not a fork of the trainer, whose
OpenMP and torch threads a fork would inherit half-initialised. It imports everything it needs, then confines
itself exactly as the validation child does (``runner.confine``: fds 0-2 to /dev/null and every other fd
closed, one torch thread, no network namespace, Landlock, nobody, RLIMIT_AS/FSIZE/NPROC/CORE, RLIMIT_CPU per
call), loads the candidate with the constrained loader (static policy included) and serves calls over a pipe
with the audit hook armed around each one, forward and backward.

Protocol (little-endian; the parent trusts nothing it reads and caps every length):

* parent -> worker, once: ``<I`` code length, then the code (UTF-8);
* worker -> parent, once, before reading the code: one byte ``C`` (confined). A worker that dies before it is
  a fault of the workflow, after it a failure of the candidate;
* worker -> parent, once: a reply to loading (status 0 and no values, or an error);
* parent -> worker, per call: ``<Id`` batch size B and beta, then 4*B float64 (policy chosen, policy rejected,
  reference chosen, reference rejected);
* worker -> parent, per call: ``<BI`` status and byte count, then, for status 0, 3*B float64 (per-example losses,
  d(mean loss)/d(policy chosen), d(mean loss)/d(policy rejected)); for status 1, that many bytes of UTF-8 error
  text. End of input: the worker exits.
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

from prefdisco.errors import CandidateError, truncate_error
from prefdisco.sandbox import checks
from prefdisco.sandbox.audit import AuditGuard
from prefdisco.sandbox.loader import ObjectiveContext, compile_objective, define_objective
from prefdisco.sandbox.runner import SandboxLimits, confine

CODE_HEADER = struct.Struct("<I")
REQUEST_HEADER = struct.Struct("<Id")
REPLY_HEADER = struct.Struct("<BI")
CONFINED = b"C"
OK, ERROR = 0, 1
MAX_BATCH = 1 << 20  # pairs per call; far above any per-device batch
MAX_ERROR_BYTES = 8192  # an error reply above this is a misbehaving worker: killed, not read
STARTUP_SECONDS = 300.0  # importing torch on a loaded machine; candidate code has not run yet
FLOAT64 = 8

Loader = Callable[[str], Callable]


# ---- trainer side ---------------------------------------------------------------------------------------------


class ObjectiveWorker:
    """A confined worker process serving one candidate objective to one trainer process.

    ``evaluate`` returns (losses, d mean/d policy_chosen, d mean/d policy_rejected) as float64 CPU tensors, or
    raises CandidateError with a short reason: the candidate's own error, a signal name, "timed out after N s",
    a non-finite or malformed result. After a failure the worker is gone and every later call raises too.
    ``command`` replaces the worker's command line (tests only: a worker without the static policy).
    """

    def __init__(self, code: str, limits: SandboxLimits = SandboxLimits(), command: list[str] | None = None) -> None:
        self.code = code
        self.limits = limits
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
            [*self.command, "--limits", json.dumps(self.limits.__dict__), "--workdir", self.workdir],
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
        if self.failure is not None:
            raise CandidateError(self.failure)
        if self.process is None:
            raise RuntimeError("the objective worker was not started")
        if not self.loaded:
            self._await_load()
        batch = policy_chosen.numel()
        vectors = torch.stack([t.detach().reshape(-1).to("cpu", torch.float64)
                               for t in (policy_chosen, policy_rejected, reference_chosen, reference_rejected)])
        deadline = time.monotonic() + self.limits.wall_seconds
        self._write(REQUEST_HEADER.pack(batch, float(beta)) + vectors.numpy().tobytes(), deadline, "a call")
        payload = self._reply(deadline, "a call", expected=3 * batch * FLOAT64)
        self.calls += 1
        values = torch.frombuffer(bytearray(payload), dtype=torch.float64).reshape(3, batch)
        losses, grad_chosen, grad_rejected = values
        if not torch.isfinite(losses).all():
            raise self._fail(f"non-finite loss ({losses.mean().item()})")
        if not torch.isfinite(values[1:]).all():
            raise self._fail("non-finite gradient with respect to the policy log-probabilities")
        return losses, grad_chosen, grad_rejected

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


def load_checked(code: str, guard: AuditGuard) -> Callable:
    """The constrained loader, static policy included; the definition runs armed (annotations are candidate
    expressions), with the one 'exec' event it needs allowed."""
    name, compiled = compile_objective(code)
    with guard.armed(frozenset({"exec"})):
        return define_objective(name, compiled)


def serve(read_fd: int, write_fd: int, limits: SandboxLimits, load: Callable[[str, AuditGuard], Callable]) -> None:
    """Load the candidate, then answer calls until the parent closes the pipe."""
    guard = AuditGuard()
    _send(write_fd, CONFINED)
    (size,) = CODE_HEADER.unpack(_receive(read_fd, CODE_HEADER.size))
    code = _receive(read_fd, size).decode("utf-8", errors="replace")
    _allow_cpu(limits)
    try:
        function = load(code, guard)
    except BaseException as error:  # noqa: BLE001 -- the candidate's failure, reported
        _send_error(write_fd, _describe(error, guard, 0, limits, "loading the objective"))
        return
    if guard.violations:
        _send_error(write_fd, f"{checks.BLOCKED_PREFIX}: {guard.violations[0]}")
        return
    _send(write_fd, REPLY_HEADER.pack(OK, 0))
    while True:
        header = _receive(read_fd, REQUEST_HEADER.size, eof_ok=True)
        if header is None:
            return
        batch, beta = REQUEST_HEADER.unpack(header)
        if not 0 < batch <= MAX_BATCH or not math.isfinite(beta):
            _send_error(write_fd, f"bad request: batch {batch}, beta {beta}")
            return
        vectors = torch.frombuffer(bytearray(_receive(read_fd, 4 * batch * FLOAT64)), dtype=torch.float64)
        _allow_cpu(limits)
        reply = call(function, guard, beta, vectors.reshape(4, batch), limits)
        if isinstance(reply, str):
            _send_error(write_fd, reply)
        else:
            data = reply.numpy().tobytes()
            _send(write_fd, REPLY_HEADER.pack(OK, len(data)) + data)


def call(function: Callable, guard: AuditGuard, beta: float, vectors: torch.Tensor,
         limits: SandboxLimits) -> torch.Tensor | str:
    """One objective call on float64 leaf tensors built here: the (3, B) losses and gradients, or an error."""
    batch = vectors.shape[1]
    policy_chosen, policy_rejected, reference_chosen, reference_rejected = (v.clone() for v in vectors)
    policy_chosen.requires_grad_(True)
    policy_rejected.requires_grad_(True)
    seen = len(guard.violations)
    try:
        with guard.armed():
            out = function(ObjectiveContext(beta), policy_chosen, policy_rejected, reference_chosen,
                           reference_rejected)
            problem = checks.shape_problem(out, batch) or checks.dtype_problem(out)
            if problem is None and not out.requires_grad:
                problem = ("the losses do not depend differentiably on the policy log-probabilities (e.g. "
                           ".detach(), .item() or argmax): no gradient flows")
            if problem is None:
                gradients = torch.autograd.grad(out.mean(), (policy_chosen, policy_rejected), allow_unused=True)
    except BaseException as error:  # noqa: BLE001 -- anything the candidate raises is its failure
        return _describe(error, guard, seen, limits, "an objective call")
    if len(guard.violations) > seen:  # blocked inside torch code that swallowed the exception
        return f"{checks.BLOCKED_PREFIX}: {guard.violations[seen]}"
    if problem is not None:
        return problem
    grad_chosen, grad_rejected = (torch.zeros(batch, dtype=torch.float64) if g is None else g.detach()
                                  for g in gradients)
    return torch.stack([out.detach().to(torch.float64), grad_chosen.to(torch.float64),
                        grad_rejected.to(torch.float64)])


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


def main(argv: list[str] | None = None, load: Callable[[str, AuditGuard], Callable] = load_checked) -> None:
    parser = argparse.ArgumentParser(description="confined objective worker (started by the trainer)")
    parser.add_argument("--limits", type=json.loads, required=True, help="SandboxLimits as JSON")
    parser.add_argument("--workdir", type=Path, required=True, help="an empty directory, its only writable place")
    args = parser.parse_args(argv)
    limits = SandboxLimits(**args.limits)
    read_fd, write_fd = confine(limits, (0, 1), str(args.workdir), cpu_limit=_cpu_limit(limits))
    status = 0
    try:
        serve(read_fd, write_fd, limits, load)
    except BaseException:  # noqa: BLE001 -- the trainer sees the closed pipe and the exit status
        status = 1
    finally:
        os._exit(status)  # no atexit handlers or finalizers run after candidate code


if __name__ == "__main__":
    main()
