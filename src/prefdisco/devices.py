"""Each job its own GPUs: a job claims free devices with lock files, so concurrent jobs never share one.

Snakemake sets no ``CUDA_VISIBLE_DEVICES``: without this, every local job would start on GPU 0. A job that asks
for N GPUs (its rule's ``resources.gpu``) takes an exclusive ``fcntl`` lock on N device lock files in one
machine-wide folder, sets ``CUDA_VISIBLE_DEVICES`` to them, and keeps the locks until it exits: the kernel
drops them however the process ends, a crash or SIGKILL included, so no lock is ever left stale. A job whose
devices are all taken waits for them. A job that asks for none sees none.

Devices someone else already chose are honoured, not claimed again: a SLURM job's (the scheduler sets
``CUDA_VISIBLE_DEVICES`` for its allocation) and those a parent prefdisco process passed down to the workers it
launched (``PREFDISCO_ASSIGNED_GPUS``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

POOL_ENV = "PREFDISCO_GPUS"  # comma-separated devices this machine's jobs may use; default: all that are found
LOCK_DIR_ENV = "PREFDISCO_GPU_LOCK_DIR"  # one folder per machine, shared by all jobs; default below
ASSIGNED_ENV = "PREFDISCO_ASSIGNED_GPUS"  # set for a job's own children: the devices were claimed already
DEFAULT_LOCK_DIR = Path("/tmp/prefdisco-gpu-locks")
NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")  # one entry per device while the NVIDIA driver is loaded

_held: list[int] = []  # open lock files: the claim lasts as long as these stay open


def assign_gpus(count: int | None, poll_seconds: float = 1.0) -> list[str]:
    """Give this process ``count`` GPUs of its own and return their ids (also set in ``CUDA_VISIBLE_DEVICES``).

    Returns fewer than asked only where the machine has no GPU at all (the job then runs on the CPU). Blocks
    while the devices are taken by other jobs. Call before anything initialises CUDA. ``None`` (an entry point
    run by hand, without ``--gpus``) leaves the devices as they are.
    """
    if count is None:
        return []
    if count < 0:
        raise ValueError(f"a job cannot ask for {count} GPUs (resources.<rule>.gpu must be >= 0)")
    if ASSIGNED_ENV in os.environ:
        return _split(os.environ[ASSIGNED_ENV])
    if count == 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU job must not land on a device another job claimed
        return _assigned([])
    if "SLURM_JOB_ID" in os.environ:
        devices = _split(os.environ.get("CUDA_VISIBLE_DEVICES", ""))
        log.info("SLURM job %s: its allocation's GPUs %s", os.environ["SLURM_JOB_ID"], ",".join(devices) or "(none)")
        return _assigned(devices)
    pool = device_pool()
    if not pool:
        log.info("the job asks for %d GPU(s) but this machine has none: it runs on the CPU", count)
        return []
    if count > len(pool):
        raise ValueError(f"the job asks for {count} GPUs (resources.<rule>.gpu) but this machine has {len(pool)}: "
                         f"{','.join(pool)}")
    devices = _claim(pool, count, lock_dir(), poll_seconds)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    log.info("claimed GPU(s) %s (locks in %s)", ",".join(devices), lock_dir())
    return _assigned(devices)


def held_lock_fds() -> list[int]:
    """The open lock files, to pass to child processes: the claim then lasts until the last of them exits."""
    return list(_held)


def device_pool() -> list[str]:
    """The devices jobs may claim: ``PREFDISCO_GPUS``, else a ``CUDA_VISIBLE_DEVICES`` the whole run was
    started with, else every NVIDIA device of the machine."""
    for variable in (POOL_ENV, "CUDA_VISIBLE_DEVICES"):
        if variable in os.environ:
            return _split(os.environ[variable])
    if NVIDIA_PROC.is_dir():
        return [str(i) for i in range(len(list(NVIDIA_PROC.iterdir())))]
    return []


def lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV, DEFAULT_LOCK_DIR))


def _claim(pool: list[str], count: int, folder: Path, poll_seconds: float) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        folder.chmod(0o1777)  # every user's jobs on this machine share the folder
    except PermissionError:
        pass
    waiting_since = None
    while True:
        taken: list[tuple[str, int]] = []
        for device in pool:
            fd = _lock(folder / f"gpu-{device.replace('/', '_')}.lock")
            if fd is not None:
                taken.append((device, fd))
                if len(taken) == count:
                    break
        if len(taken) == count:
            for device, fd in taken:
                _note_owner(fd)
                _held.append(fd)
            if waiting_since is not None:
                log.info("waited %.0f s for free GPUs", time.monotonic() - waiting_since)
            return [device for device, _ in taken]
        # All or nothing: holding some devices while waiting for more could deadlock two multi-GPU jobs.
        for _, fd in taken:
            os.close(fd)
        if waiting_since is None:
            waiting_since = time.monotonic()
            log.info("all GPUs of %s are taken by other jobs: waiting for %d to be free", ",".join(pool), count)
        time.sleep(poll_seconds)


def _lock(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's lock file: a read-only descriptor locks it just as well
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _note_owner(fd: int) -> None:
    """Who holds the device, for a person who looks in the lock folder."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
    except OSError:
        pass


def _assigned(devices: list[str]) -> list[str]:
    os.environ[ASSIGNED_ENV] = ",".join(devices)
    return devices


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
