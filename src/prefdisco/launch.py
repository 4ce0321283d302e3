"""Multi-GPU launch: a stage entry point given more than one GPU re-runs itself under ``accelerate launch``.

One process per GPU, with the strategy's accelerate config shipped in the package (``prefdisco/accelerate/``:
``deepspeed_zero3``, ``fsdp`` or ``ddp``; config key ``training.distributed``). With one GPU or none the entry
point simply goes on in-process, so the same rule runs on a CPU, one GPU or a whole node.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from .devices import held_lock_fds

log = logging.getLogger(__name__)


def launched() -> bool:
    """True inside a process that a launcher (accelerate, torchrun) started as one of several."""
    return "LOCAL_RANK" in os.environ


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """The process that writes the job's outputs: rank 0, or the only one."""
    return int(os.environ.get("RANK", "0")) == 0


def accelerate_config_file(strategy: str) -> Path:
    """The accelerate config of a ``training.distributed`` strategy. Named, not passed as a path, so that a job's
    command line does not change when the checkout moves (Snakemake would rerun every training)."""
    return Path(__file__).parent / "accelerate" / f"{strategy}.yaml"


def accelerate_command(module: str, argv: list[str], processes: int, config_file: Path, port: int) -> list[str]:
    """The ``accelerate launch`` command that runs ``python -m module argv`` in ``processes`` processes."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "--num_processes", str(processes), "--num_machines", "1", "--main_process_port", str(port),
            "--module", module, *argv]


def relaunch(module: str, argv: list[str], processes: int, config_file: Path) -> int:
    """Run ``module`` with ``argv`` under accelerate in ``processes`` processes; returns their exit status."""
    config_file = Path(config_file)
    if not config_file.is_file():
        raise FileNotFoundError(f"accelerate config {config_file} not found (training.distributed names a file "
                                "in prefdisco/accelerate/)")
    settings = yaml.safe_load(config_file.read_text())
    if settings.get("distributed_type") == "DEEPSPEED" and importlib.util.find_spec("deepspeed") is None:
        raise RuntimeError(f"{config_file.name} launches DeepSpeed, which is not installed: `pip install deepspeed` "
                           "on the GPU nodes, or set training.distributed to fsdp or ddp")
    # Two multi-GPU jobs on one node must not meet at the default rendezvous port.
    command = accelerate_command(module, argv, processes, config_file, free_port())
    log.info("launching %d processes: %s", processes, " ".join(command))
    # The workers hold the device locks too, so the devices stay claimed until the last worker is gone.
    return subprocess.run(command, pass_fds=held_lock_fds()).returncode


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
