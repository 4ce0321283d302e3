"""Run candidate objectives in forked, resource-limited children; the calling process never executes them.

The confinement of layer 2 is one function, :func:`confine`, shared with the training worker (sandbox.worker).

Layers, outermost first:

1. static policy (policy.check_source), applied in the parent on the source text only: rejected programs
   are never forked for;
2. a forked child per candidate (up to ``workers`` at a time) that, before touching the code: points fds
   0-2 at /dev/null and closes every other inherited fd, uses one torch thread, leaves the network namespace
   (when permitted), moves into an empty temporary directory, confines itself with Landlock (reads only
   beneath the Python installation and system libraries, writes only in that directory, no TCP, no signals
   out; see sandbox.landlock), drops root to nobody (when root), and sets RLIMIT_CPU, RLIMIT_AS,
   RLIMIT_FSIZE=0, RLIMIT_NPROC=0 and RLIMIT_CORE=0;
3. the constrained loader (bare namespace, safe builtins, import of allowed loaded modules only);
4. an audit hook, armed only around calls into candidate code, that blocks every audited event there
   (open, os.*, subprocess.*, socket.*, ctypes.*, import, exec, compile, object.__getattr__ ...): normal
   torch ops raise none, so a whitelist of (almost) nothing is both the simplest and the strictest choice;
5. the parent enforces the wall-clock limit and caps the bytes it reads, and SIGKILLs on breach.

torch is imported here, at module import, so children inherit it; the parent runs no torch ops itself
(OpenMP state created before a fork can deadlock the child), and each child sets one thread first anyway.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import json
import logging
import math
import os
import resource
import selectors
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional  # noqa: F401 -- loaded before forking, so children never import

from prefdisco.errors import truncate_error
from prefdisco.families import get_family
from prefdisco.sandbox import checks, landlock
from prefdisco.sandbox.audit import AuditGuard
from prefdisco.sandbox.static_policy import PolicyViolation, check_source

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
NOBODY = 65534
READ_CHUNK = 65536
# All a child may read once Landlock is on: the Python installation and system libraries, which torch or Python
# may load lazily (a shared library, a module's source for a traceback). Not /etc, /home, /root, /tmp, the project
# or the run folder.
RUNTIME_READABLE = sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.dirname(torch.__file__)),
                           "/usr/lib", "/usr/lib64", "/lib", "/lib64"})

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class SandboxLimits:
    """Per-candidate limits. cpu_seconds and memory_mb are rlimits in the child; wall_seconds is enforced by
    the parent; max_output_bytes caps what the parent reads back from a child."""

    # The same defaults as the config schema's sandbox section (the workflow's source of defaults): this class is
    # also built by hand, by validate's command line and by tests.
    cpu_seconds: int = 20
    memory_mb: int = 4096
    wall_seconds: float = 60.0
    max_output_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "memory_mb", "wall_seconds", "max_output_bytes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SandboxLimits.{name} must be positive, got {getattr(self, name)!r}")


def validate_programs(
    programs: list[tuple[str, str]],
    beta: float,
    limits: SandboxLimits = SandboxLimits(),
    *,
    workers: int | None = None,
    family: str | None = None,
) -> list[dict[str, Any]]:
    """Validate each (candidate_id, code) in its own sandboxed child; one result dict per program, in order.

    Each result: {"id", "valid", "error", "checks", "fingerprint", "measurements", "curve", "wall_seconds"}.
    ``workers`` children run at a time (default: the usable CPU count, at most 4). ``family`` names the objective
    family whose contract and property checks apply (default: preference).
    """
    objective_family = get_family(family)
    run_checks = objective_family.run_checks()  # resolved here: a confined child imports nothing
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a positive number, got {beta!r}")
    workers = workers or max(1, min(len(os.sched_getaffinity(0)), 4))
    results: list[dict[str, Any] | None] = [None] * len(programs)
    pending: list[int] = []
    for index, (candidate_id, code) in enumerate(programs):
        try:
            check_source(code, objective_family.contract_arguments)  # static only: parses the text, never runs it
        except PolicyViolation as violation:
            result = checks.empty_result()
            result["checks"]["static_policy"] = "fail"
            result["error"] = str(violation)
            results[index] = _finish(candidate_id, result, 0.0)
            continue
        pending.append(index)

    selector = selectors.DefaultSelector()
    active: dict[int, _Child] = {}
    try:
        while pending or active:
            while pending and len(active) < workers:
                index = pending.pop(0)
                candidate_id, code = programs[index]
                child = _spawn(index, candidate_id, code, beta, limits, run_checks)
                active[child.fd] = child
                selector.register(child.fd, selectors.EVENT_READ)
            now = time.monotonic()
            timeout = max(0.0, min(child.deadline for child in active.values()) - now)
            for key, _ in selector.select(timeout):
                child = active[key.fd]
                chunk = os.read(key.fd, READ_CHUNK)
                if chunk:
                    child.output.extend(chunk)
                    if len(child.output) > limits.max_output_bytes:
                        child.overflow = True
                        _kill(child.pid)
                    else:
                        continue
                selector.unregister(key.fd)
                del active[key.fd]
                results[child.index] = _reap(child, limits)
            now = time.monotonic()
            for fd, child in list(active.items()):
                if now >= child.deadline:
                    child.timed_out = True
                    _kill(child.pid)
                    selector.unregister(fd)
                    del active[fd]
                    results[child.index] = _reap(child, limits)
    finally:
        for fd, child in active.items():  # only on an exception in this loop: leave no child behind
            _kill(child.pid)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, 0)
            os.close(fd)
            shutil.rmtree(child.workdir, ignore_errors=True)
        selector.close()
    return [r for r in results if r is not None]


# ---- parent side -------------------------------------------------------------------------------------------


@dataclass
class _Child:
    index: int
    candidate_id: str
    pid: int
    fd: int
    workdir: str
    started: float
    deadline: float
    output: bytearray
    timed_out: bool = False
    overflow: bool = False


def _spawn(index: int, candidate_id: str, code: str, beta: float, limits: SandboxLimits,
           run_checks: Callable[..., dict[str, Any]]) -> _Child:
    workdir = tempfile.mkdtemp(prefix="prefdisco-sandbox-")
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    if pid == 0:  # child: never returns
        os.close(read_fd)
        _child_main(code, beta, limits, write_fd, workdir, run_checks)
    os.close(write_fd)  # so EOF arrives when the child exits, and later children do not inherit it
    return _Child(index, candidate_id, pid, read_fd, workdir, started, started + limits.wall_seconds, bytearray())


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _reap(child: _Child, limits: SandboxLimits) -> dict[str, Any]:
    try:
        _, status = os.waitpid(child.pid, 0)
    except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored by the host): trust the result if one came
        status = 0
    os.close(child.fd)
    elapsed = time.monotonic() - child.started
    shutil.rmtree(child.workdir, ignore_errors=True)
    stage, result, child_error = None, None, None
    for line in bytes(child.output).splitlines():  # one JSON message per line; a cut-off last line is skipped
        try:
            message = json.loads(line)
        except ValueError:
            continue
        stage = message.get("stage", stage)
        result = message.get("result", result)
        child_error = message.get("error", child_error)
    clean_exit = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    if result is not None and clean_exit and not child.overflow and not child.timed_out:
        return _finish(child.candidate_id, result, elapsed)
    error = child_error or _failure_message(child, status, stage, limits)
    result = checks.empty_result()
    result["error"] = error
    passed = True
    for name in checks.CHECK_NAMES:
        if name == stage or (stage == checks.MEASUREMENT_STAGE and name == "no_blocked_operations"):
            result["checks"][name] = "fail"
            passed = False
        elif passed and stage is not None:
            result["checks"][name] = "pass"
    if stage is None:
        result["checks"]["static_policy"] = "pass"  # checked in the parent before forking
    log.debug("candidate %s: %s", child.candidate_id, error)
    return _finish(child.candidate_id, result, elapsed)


def _failure_message(child: _Child, status: int, stage: str | None, limits: SandboxLimits) -> str:
    if stage in checks.CHECK_NAMES:
        during = f" during check '{stage}'"
    elif stage == checks.MEASUREMENT_STAGE:
        during = " while measuring the loss curve"
    else:
        during = ""
    if child.overflow:
        return f"the sandbox child sent more than {limits.max_output_bytes} bytes{during} and was killed"
    if child.timed_out:
        return f"timed out after {limits.wall_seconds:g} s{during} (possible infinite loop)"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if number == signal.SIGXCPU:
            return (f"killed by signal SIGXCPU{during}: exceeded the {limits.cpu_seconds} CPU-second limit "
                    "(possible infinite loop)")
        if number == signal.SIGKILL:
            return (f"killed by signal SIGKILL{during}: exceeded the {limits.cpu_seconds} CPU-second limit or the "
                    f"{limits.memory_mb} MB memory limit")
        return f"crashed with signal {name}{during} (the memory limit is {limits.memory_mb} MB)"
    return f"the sandbox child exited with status {os.WEXITSTATUS(status)}{during} without a result"


def _finish(candidate_id: str, result: dict[str, Any], elapsed: float) -> dict[str, Any]:
    return {
        "id": candidate_id,
        "valid": bool(result["valid"]),
        "error": result["error"] and truncate_error(result["error"]),
        "checks": result["checks"],
        "fingerprint": result["fingerprint"],
        "measurements": result["measurements"],
        "curve": result["curve"],
        "wall_seconds": round(elapsed, 4),
    }


# ---- child side ------------------------------------------------------------------------------------------------


def _child_main(code: str, beta: float, limits: SandboxLimits, write_fd: int, workdir: str,
                run_checks: Callable[..., dict[str, Any]]) -> None:
    status = 0
    try:
        # Never collect objects inherited from the parent: their finalizers could act on the parent's files.
        gc.freeze()
        (write_fd,) = confine(limits, (write_fd,), workdir)
        guard = AuditGuard()
        result = run_checks(
            code, beta, guard, progress=lambda stage: _send(write_fd, {"stage": stage}), memory_mb=limits.memory_mb
        )
        _send(write_fd, {"result": _jsonable(result)})
    except BaseException as error:  # noqa: BLE001 -- report anything, then leave without cleanup handlers
        status = 1
        with contextlib.suppress(BaseException):
            _send(write_fd, {"error": f"sandbox failure: {type(error).__name__}: {error}"[:1000]})
    finally:
        os._exit(status)  # skip atexit and finalizers inherited from the parent (pytest, loggers, temp dirs)


def confine(limits: SandboxLimits, keep_fds: tuple[int, ...], workdir: str,
            cpu_limit: tuple[int, int] | None = None) -> tuple[int, ...]:
    """Everything a process does before it reads candidate code: the one confinement of the validation child and
    the training worker (sandbox.worker). Returns the kept fds' new numbers, in order.

    ``cpu_limit`` is the (soft, hard) RLIMIT_CPU; by default (cpu_seconds, cpu_seconds + 1). The training worker
    keeps the hard limit open and moves the soft one before each call, since its CPU time adds up over a job.
    """
    # Keep the pipes clear of fds 0-2 (a host that closed its stdout could have handed out 1 or 2).
    kept = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD, 3) for fd in keep_fds)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # printed output and torch warnings go nowhere, however large
        os.dup2(devnull, fd)
    # No access to the parent's files, sockets or other children's pipes: close every fd but the kept ones.
    previous = 2
    for fd in sorted(kept):
        os.closerange(previous + 1, fd)
        previous = fd
    os.closerange(previous + 1, _max_fd())
    torch.set_num_threads(1)
    if _libc.unshare(CLONE_NEWNET) != 0:
        pass  # not permitted (no CAP_SYS_ADMIN): the audit hook still blocks sockets
    os.chdir(workdir)
    landlock.restrict(readable=RUNTIME_READABLE, writable=[workdir])
    if os.geteuid() == 0:
        try:
            os.chown(workdir, NOBODY, NOBODY)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)  # RLIMIT_NPROC does not bind root; it binds nobody
        except PermissionError:
            pass  # root without CAP_SETUID (some containers): the other layers still hold
    _libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))  # after setuid, which clears it: die with the parent
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, cpu_limit or (limits.cpu_seconds, limits.cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    return kept


def _max_fd() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 65536


def _send(fd: int, message: dict[str, Any]) -> None:
    data = memoryview((json.dumps(message, allow_nan=False) + "\n").encode())
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _jsonable(value: Any) -> Any:
    """Non-finite floats become None: the records must be strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
