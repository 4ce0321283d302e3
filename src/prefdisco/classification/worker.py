"""A confined process that runs a classification objective during training; the trainer never executes it.

The trainer sends each batch's logits (detached, float32, CPU) and targets; the worker returns the per-example
losses and d(mean loss)/d(logits); the trainer then back-propagates the surrogate ``sum(grad * logits)``, which has
exactly the gradient of the candidate's mean loss with respect to the network's parameters. The candidate never sees
the model, the optimizer or the data beyond one batch of logits and targets.

The worker is forked at the start of training (before the trainer's own torch work, so no OpenMP state is inherited)
and confined as the sandbox child is (:func:`prefdisco.sandbox.runner.confine`: descriptors closed, no network, an
empty directory, Landlock, nobody, rlimits), then loads the objective through the same constrained loader, with the
audit hook armed around every call into candidate code. The interface is ``losses_and_grads(logits, targets)``, the
one the preference worker exposes too.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import signal
import socket
import struct
import tempfile
from dataclasses import dataclass
from typing import Any

import torch

from prefdisco.classification.objectives import CONTRACT_ARGUMENTS
from prefdisco.sandbox.checks import describe_exception, dtype_problem, shape_problem
from prefdisco.sandbox.loader import compile_objective, define_objective
from prefdisco.sandbox.runner import SandboxLimits, confine

HEADER = struct.Struct("<qq")  # batch size, classes (a negative batch asks the worker to exit)
STATUS = struct.Struct("<q")  # 0: losses and gradients follow; otherwise the length of a UTF-8 error message


class CandidateError(RuntimeError):
    """The candidate's own code failed during training (a result: train_failed), with the reason."""


@dataclass(frozen=True)
class WorkerLimits:
    """cpu_seconds and memory_mb bind the worker for the whole training run; call_seconds bounds one batch."""

    cpu_seconds: int = 3600
    memory_mb: int = 4096
    call_seconds: float = 60.0


class ObjectiveWorker:
    """``with ObjectiveWorker(code) as worker: losses, grads = worker.losses_and_grads(logits, targets)``."""

    def __init__(self, code: str, limits: WorkerLimits = WorkerLimits()) -> None:
        compile_objective(code, CONTRACT_ARGUMENTS)  # the static policy, in this process, on the text only
        self.limits = limits
        parent, child = socket.socketpair()
        self.workdir = tempfile.mkdtemp(prefix="prefdisco-objective-")
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            parent.close()
            _worker_main(code, child.detach(), self.workdir, limits)
        child.close()
        self.pid = pid
        self.socket = parent
        self.socket.settimeout(limits.call_seconds)
        self.calls = 0

    def losses_and_grads(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example losses (B,) and d(mean loss)/d(logits) (B, C), on the logits' device and dtype."""
        batch, classes = logits.shape
        self.calls += 1
        try:
            self.socket.sendall(HEADER.pack(batch, classes)
                                + logits.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
                                + targets.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
            (status,) = STATUS.unpack(self._receive(STATUS.size))
            if status != 0:
                raise CandidateError(self._receive(status).decode("utf-8", "replace"))
            payload = self._receive(4 * (batch + batch * classes))
        except (TimeoutError, socket.timeout):
            raise CandidateError(f"the objective took longer than {self.limits.call_seconds:g} s on one batch "
                                 f"(call {self.calls}); possible infinite loop") from None
        values = torch.frombuffer(bytearray(payload), dtype=torch.float32)
        losses = values[:batch].clone().to(logits.device, logits.dtype)
        grads = values[batch:].reshape(batch, classes).clone().to(logits.device, logits.dtype)
        return losses, grads

    def _receive(self, size: int) -> bytes:
        chunks, remaining = [], size
        while remaining:
            chunk = self.socket.recv(min(remaining, 1 << 20))
            if not chunk:
                raise CandidateError(self._death())
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _death(self) -> str:
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        if os.WIFSIGNALED(status):
            name = signal.Signals(os.WTERMSIG(status)).name
            return (f"the objective worker was killed by {name} at call {self.calls} (limits: "
                    f"{self.limits.cpu_seconds} CPU seconds, {self.limits.memory_mb} MB)")
        return f"the objective worker exited with status {os.WEXITSTATUS(status)} at call {self.calls}"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.sendall(HEADER.pack(-1, 0))
        self.socket.close()
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "ObjectiveWorker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---- the worker process ----------------------------------------------------------------------------------------


def _worker_main(code: str, fd: int, workdir: str, limits: WorkerLimits) -> None:
    status = 0
    try:
        gc.freeze()
        (fd,) = confine(SandboxLimits(cpu_seconds=limits.cpu_seconds, memory_mb=limits.memory_mb), (fd,), workdir)
        from prefdisco.sandbox.audit import AuditGuard  # already imported by the runner: no file is read

        guard = AuditGuard()
        name, compiled = compile_objective(code, CONTRACT_ARGUMENTS)
        with guard.armed(frozenset({"exec"})):
            function = define_objective(name, compiled)
        while True:
            batch, classes = HEADER.unpack(_read(fd, HEADER.size))
            if batch < 0:
                break
            logits = torch.frombuffer(bytearray(_read(fd, 4 * batch * classes)), dtype=torch.float32)
            targets = torch.frombuffer(bytearray(_read(fd, 8 * batch)), dtype=torch.int64)
            logits = logits.reshape(batch, classes).requires_grad_(True)
            try:
                with guard.armed():
                    losses = function(logits, targets)
                    problem = shape_problem(losses, batch) or dtype_problem(losses)
                    if problem is None and not losses.requires_grad:
                        problem = "the losses do not depend differentiably on the logits"
                    if problem is None:
                        (grad,) = torch.autograd.grad(losses.float().mean(), (logits,), allow_unused=True)
                if problem is None:
                    grad = torch.zeros_like(logits) if grad is None else grad
                    losses = losses.detach().float()
                    if not (torch.isfinite(losses).all() and torch.isfinite(grad).all()):
                        bad = "loss" if not torch.isfinite(losses).all() else "gradient"
                        problem = f"the {bad} became non-finite in training"
            except BaseException as error:  # noqa: BLE001 -- the candidate's failure, reported
                problem = (guard.violations[-1] if guard.violations else describe_exception(error, limits.memory_mb))
            if problem:
                message = json.dumps(problem)[1:-1].encode()[:4000]
                _write(fd, STATUS.pack(len(message)) + message)
                continue
            _write(fd, STATUS.pack(0) + losses.numpy().tobytes() + grad.detach().float().contiguous().numpy().tobytes())
    except BaseException:  # noqa: BLE001 -- the parent sees the closed socket and reports it
        status = 1
    finally:
        os._exit(status)


def _read(fd: int, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
