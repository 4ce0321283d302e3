"""The workflow through profiles/slurm on a real one-node SLURM cluster (Debian's slurmctld, slurmd and munge),
started by tests/slurm/setup_cluster.sh and stopped after the module.

`make test-slurm` (and CI) run these: they need root, apt and the executor plugin (on PYTHONPATH, see the
Makefile); PREFDISCO_SLURM_TESTS=1 turns them on. Without accounting storage there is no sacct history: jobs are
followed with squeue, whose records of finished jobs the test cluster keeps for an hour (MinJobAge).
"""

from __future__ import annotations

import json
from collections import Counter
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from test_profiles import dry_run_resources
from tiny_runs import ENV, read_archive, write_config

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(os.environ.get("PREFDISCO_SLURM_TESTS") != "1",
                       reason="needs a SLURM cluster: `make test-slurm` (root) sets PREFDISCO_SLURM_TESTS=1"),
]

CLUSTER = REPO / "tests" / "slurm"
RUN_SECONDS = 900
# The executor's defaults are for a busy cluster (first status check after 40 s); this one is idle.
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
             "--workflow-profile", str(REPO / "profiles" / "slurm"), "--slurm-status-command", "squeue",
             "--slurm-init-seconds-before-status-checks", "2"]
SMALL = {"mem_mb": 2000, "runtime": 10}
GPU_JOB = {**SMALL, "gpu": 1, "cpus_per_gpu": 1}


@pytest.fixture(scope="module")
def cluster():
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.fail("snakemake-executor-plugin-slurm is not importable: run these tests with `make test-slurm`")
    setup = subprocess.run(["bash", str(CLUSTER / "setup_cluster.sh")], capture_output=True, text=True, timeout=600)
    if setup.returncode != 0:
        subprocess.run(["bash", str(CLUSTER / "teardown_cluster.sh")], timeout=120)
        pytest.fail(f"the test cluster did not start:\n{setup.stdout[-2000:]}\n{setup.stderr[-3000:]}")
    yield
    subprocess.run(["bash", str(CLUSTER / "teardown_cluster.sh")], timeout=120, check=True)


def snakemake_on_slurm(folder: Path, *args: str) -> str:
    """Run Snakemake through the SLURM profile; its log. A Snakemake stuck waiting on jobs ignores SIGTERM, so
    the bound is a SIGKILL."""
    result = subprocess.run(["timeout", "-s", "KILL", str(RUN_SECONDS), *SNAKEMAKE, "--directory", str(folder), *args],
                            capture_output=True, text=True, env=ENV)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"snakemake on SLURM failed ({result.returncode}):\n{log[-6000:]}"
    return log


CASCADE_RULES = {"train", "evaluate", "archive", "promote", "final_archive"}


def slurm_jobs(log: str) -> dict[int, dict]:
    """The SLURM records of the jobs this Snakemake log says it submitted, by SLURM job id."""
    submitted = {int(i) for i in re.findall(r"has been submitted with SLURM jobid (\d+)", log)}
    assert submitted, "Snakemake submitted no job"
    listing = subprocess.run(["squeue", "--states=all", "--json"], capture_output=True, text=True, check=True)
    return {job["job_id"]: job for job in json.loads(listing.stdout)["jobs"] if job["job_id"] in submitted}


def rule_of(job: dict) -> str:
    """The plugin comments each job with its rule and wildcards: rule_<name>_wildcards_<values>."""
    return re.match(r"rule_(\w+?)_wildcards", job["comment"]).group(1)


def test_tiny_run_through_the_slurm_profile(cluster, tmp_path, tiny_model_dir):
    write_config(tmp_path, tiny_model_dir, **{
        "discovery.generations": 1, "discovery.population": 1, "discovery.seed_objectives": ["dpo"],
        "experiments": {},
        "resources": {"preferences": SMALL, "reference_logps": SMALL, "validate": SMALL,
                      "train": GPU_JOB, "evaluate": GPU_JOB},
    })
    log = snakemake_on_slurm(tmp_path)

    records = read_archive(tmp_path, 1)
    assert [(r["id"], r["status"]) for r in records] == [("g0-k0", "ok"), ("g1-k0", "ok")]
    assert (tmp_path / "results" / "tiny" / "figures" / "reward_vs_kl.png").stat().st_size > 10_000

    jobs = slurm_jobs(log)
    submitted = len(re.findall(r"has been submitted with SLURM jobid", log))
    assert len(jobs) == submitted, "a submitted job is missing from squeue's history"
    assert all(job["job_state"] == "COMPLETED" for job in jobs.values())
    rules = Counter(rule_of(job) for job in jobs.values())
    # Every stage of the DAG is a job of its own; the cascade adds its decisions and, where a candidate could
    # still be the best or the control needs another seed, more train -> evaluate units of the same rules.
    assert Counter(["preferences", "reference_logps", "evaluate_reference", "validate", "validate", "train", "train",
                    "evaluate", "evaluate", "archive", "archive", "promote", "promote", "final_archive", "summary",
                    "figures"]) <= rules, rules
    assert set(rules) <= CASCADE_RULES | {"preferences", "reference_logps", "evaluate_reference", "validate",
                                          "summary", "figures", "run_config"}, rules
    # network-bound and trivial steps ran on the submitting machine, as local rules
    for local in ("reference", "propose", "candidate_objective"):
        assert f"localrule {local}:" in log
    for job in jobs.values():
        rule = rule_of(job)
        if rule in ("train", "evaluate", "evaluate_reference"):
            assert job["tres_per_job"] == "gres:gpu:1" and job["cpus_per_tres"] == "gres:gpu:1", job
        else:
            assert not job["tres_per_job"], f"{rule} asked for a GPU"
        if rule in ("preferences", "reference_logps", "validate", "train", "evaluate", "evaluate_reference"):
            assert (job["memory_per_node"], job["time_limit"]) == (2000, 10), rule  # from the config
        else:
            assert (job["memory_per_node"], job["time_limit"]) == (2000, 30), rule  # the profile's default
    train_log = (tmp_path / "results" / "tiny" / "logs" / "gen0" / "cand0" / "train.log").read_text()
    assert re.search(r"SLURM job \d+: its allocation's GPUs", train_log)

    # Compute nodes with network: `local_rules: []` submits the proposer too. One more generation, nothing redone.
    write_config(tmp_path, tiny_model_dir, **{
        "discovery.generations": 2, "discovery.population": 1, "discovery.seed_objectives": ["dpo"],
        "experiments": {}, "local_rules": [],
        "resources": {"preferences": SMALL, "reference_logps": SMALL, "validate": SMALL,
                      "train": GPU_JOB, "evaluate": GPU_JOB},
    })
    log = snakemake_on_slurm(tmp_path)
    rules = Counter(rule_of(job) for job in slurm_jobs(log).values())
    assert Counter(["propose", "validate", "train", "evaluate", "archive", "promote", "final_archive", "summary",
                    "figures"]) <= rules, rules
    assert set(rules) <= CASCADE_RULES | {"propose", "validate", "summary", "figures", "run_config"}, rules
    assert "preferences" not in rules and "reference_logps" not in rules  # nothing of the first run is redone
    assert [r["id"] for r in read_archive(tmp_path, 2)] == ["g0-k0", "g1-k0", "g2-k0"]


def test_paper_discovery_dry_run_under_the_slurm_profile(cluster, tmp_path):
    """The requests of the paper's 7B setting; the jobs the config gives no resources get the profile's."""
    jobs = dry_run_resources("--workflow-profile", str(REPO / "profiles" / "slurm"), "all", "experiments",
                             "--configfile", str(REPO / "configs" / "paper" / "discovery.yaml"), cwd=tmp_path)
    assert jobs["train"]
    for train in jobs["train"]:
        assert (train["gpu"], train["cpus_per_gpu"], train["mem_mb"], train["runtime"]) == ("8", "8", "256000", "240")
    for job in jobs["evaluate"] + jobs["reference_logps"]:
        assert (job["gpu"], job["cpus_per_gpu"]) == ("1", "8")
    assert [(job["mem_mb"], job["runtime"], "gpu" in job) for job in jobs["summary"]] == [("2000", "30", False)]
