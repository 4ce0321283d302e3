"""Profiles and the paper's preset: what a cluster run asks for comes from the config and the profile, never from
the rules. A dry run of the paper's discovery config shows the requests of the 7B setting."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from conftest import REPO

PROFILES = REPO / "profiles"


def dry_run_resources(*args: str, cwd) -> dict[str, list[dict[str, str]]]:
    """rule name -> the resources of each of its jobs, as `snakemake -n` prints them."""
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(cwd), "-n", *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs: dict[str, list[dict[str, str]]] = {}
    for job in re.finditer(r"^(?:local)?rule (\w+):\n((?:[ \t]+.*\n)*)", result.stdout + result.stderr, re.MULTILINE):
        found = re.search(r"^\s+resources: (.+)$", job.group(2), re.MULTILINE)
        if found:
            resources = dict(item.split("=", 1) for item in found.group(1).split(", "))
            jobs.setdefault(job.group(1), []).append(resources)
    return jobs


def test_paper_discovery_asks_for_a_whole_node_per_training(tmp_path):
    jobs = dry_run_resources("all", "experiments", "--configfile", str(REPO / "configs" / "paper" / "discovery.yaml"),
                             cwd=tmp_path)
    assert jobs["train"], "no training job in the dry run"
    for train in jobs["train"]:
        assert (train["gpu"], train["cpus_per_gpu"], train["mem_mb"], train["runtime"]) == ("8", "8", "256000", "240")
    for rule in ("reference_logps", "evaluate"):
        assert all(job["gpu"] == "1" for job in jobs[rule]), rule


def test_rules_hard_code_no_cluster_settings():
    for smk in (REPO / "rules").glob("*.smk"):
        text = smk.read_text()
        for word in ("slurm_partition", "slurm_account", "partition", "account", "qos"):
            assert not re.search(rf"\b{word}\b", text), f"{smk.name} names {word}: it belongs in the profile or config"


def test_slurm_profile_retries_with_growing_resources():
    profile = yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["retries"] >= 1
    assert all("attempt" in str(profile["default-resources"][key]) for key in ("mem_mb", "runtime"))
    common = (REPO / "rules" / "common.smk").read_text()
    assert "* attempt" in common  # config resources (mem_mb, runtime) scale with the attempt too


def test_default_profile_runs_locally():
    profile = yaml.safe_load((PROFILES / "default" / "config.yaml").read_text())
    assert profile == {"cores": "all"}
