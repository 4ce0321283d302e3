"""Device assignment: concurrent jobs never share a GPU. Real processes and real fcntl locks; the machine's GPUs
are injected (PREFDISCO_GPUS), so no GPU is needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prefdisco import devices

# A job: claim GPUs, hold them for a while, report what it got and when.
JOB = """
import json, os, sys, time
from prefdisco.devices import assign_gpus
count, hold, report = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
got_devices = assign_gpus(count, poll_seconds=0.02)
got = time.time()
time.sleep(hold)
json.dump({"devices": got_devices, "visible": os.environ["CUDA_VISIBLE_DEVICES"], "got": got, "end": time.time()},
          open(report, "w"))
"""


def job_env(tmp_path: Path, pool: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", devices.ASSIGNED_ENV)}
    return {**env, devices.POOL_ENV: pool, devices.LOCK_DIR_ENV: str(tmp_path / "locks")}


def run_jobs(tmp_path: Path, pool: str, counts: list[int], hold: float) -> list[dict]:
    env = job_env(tmp_path, pool)
    reports = [tmp_path / f"job{i}.json" for i in range(len(counts))]
    jobs = [subprocess.Popen([sys.executable, "-c", JOB, str(count), str(hold), str(report)], env=env)
            for count, report in zip(counts, reports)]
    for job in jobs:
        assert job.wait(timeout=60) == 0
    return [json.loads(report.read_text()) for report in reports]


def assert_no_device_shared_at_once(reports: list[dict]) -> None:
    for i, a in enumerate(reports):
        for b in reports[i + 1:]:
            overlap = a["got"] < b["end"] and b["got"] < a["end"]
            if overlap:
                assert not set(a["devices"]) & set(b["devices"]), f"{a} and {b} shared a device"


def test_concurrent_jobs_each_get_their_own_device(tmp_path):
    reports = run_jobs(tmp_path, "0,1", [1, 1, 1, 1], hold=1.0)
    for report in reports:
        assert len(report["devices"]) == 1 and report["visible"] == report["devices"][0]
    assert_no_device_shared_at_once(reports)
    # two devices, four jobs of a second each: two waves, not one
    assert max(r["end"] for r in reports) - min(r["got"] for r in reports) >= 1.9


def test_multi_gpu_jobs_take_all_their_devices_or_wait(tmp_path):
    reports = run_jobs(tmp_path, "0,1,2", [2, 2, 1], hold=1.0)
    assert [len(r["devices"]) for r in reports] == [2, 2, 1]
    assert reports[0]["visible"].count(",") == 1
    assert_no_device_shared_at_once(reports)
    first, second = sorted(reports[:2], key=lambda r: r["got"])
    assert second["got"] >= first["end"]  # 2 + 2 > 3 devices: one waited for the other


def test_a_killed_job_frees_its_devices(tmp_path):
    env = job_env(tmp_path, "0")
    crash = "import os, signal; from prefdisco.devices import assign_gpus; assign_gpus(1); os.kill(os.getpid(), signal.SIGKILL)"
    assert subprocess.run([sys.executable, "-c", crash], env=env).returncode == -9
    started = time.time()
    report = run_jobs(tmp_path, "0", [1], hold=0.0)[0]
    assert report["devices"] == ["0"] and report["got"] - started < 10


def test_workers_a_job_started_keep_its_devices_after_it_exits(tmp_path):
    """The training launcher passes its locks to the workers: the device stays claimed while any of them runs."""
    env = job_env(tmp_path, "0")
    parent = ("import subprocess, sys; from prefdisco.devices import assign_gpus, held_lock_fds; assign_gpus(1);"
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(2)'], pass_fds=held_lock_fds())")
    assert subprocess.run([sys.executable, "-c", parent], env=env).returncode == 0
    parent_exited = time.time()
    report = run_jobs(tmp_path, "0", [1], hold=0.0)[0]
    assert report["got"] - parent_exited >= 1.5


@pytest.fixture
def environment(monkeypatch):
    """A private os.environ for in-process calls (assign_gpus sets variables)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", devices.ASSIGNED_ENV, devices.POOL_ENV)}
    monkeypatch.setattr(os, "environ", env)
    return env


def test_a_job_without_gpus_sees_none(environment):
    assert devices.assign_gpus(0) == []
    assert environment["CUDA_VISIBLE_DEVICES"] == ""


def test_a_slurm_job_keeps_the_devices_of_its_allocation(environment):
    environment.update(SLURM_JOB_ID="42", CUDA_VISIBLE_DEVICES="3,5")
    assert devices.assign_gpus(2) == ["3", "5"]
    assert environment["CUDA_VISIBLE_DEVICES"] == "3,5"


def test_workers_inherit_the_devices_their_parent_claimed(environment):
    environment.update({devices.ASSIGNED_ENV: "1,2", "CUDA_VISIBLE_DEVICES": "1,2"})
    assert devices.assign_gpus(2) == ["1", "2"]


def test_a_machine_without_gpus_runs_the_job_on_the_cpu(environment):
    environment[devices.POOL_ENV] = ""
    assert devices.assign_gpus(1) == []


def test_asking_for_more_gpus_than_the_machine_has_names_the_resource(environment):
    environment[devices.POOL_ENV] = "0,1"
    with pytest.raises(ValueError, match=r"asks for 4 GPUs \(resources.<rule>.gpu\) but this machine has 2"):
        devices.assign_gpus(4)
