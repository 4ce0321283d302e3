"""End-to-end Snakemake runs of the whole DAG on a tiny config, in a temporary directory.

A real 2-layer model (random weights, SmolLM2's real tokenizer), real sampling, training, sandboxed validation
and evaluation: what is checked is the archive, the figures, caching across extensions, and resumption. The tests
that read a run read the shared one (tests/conftest.py::tiny_run); a test that needs a run of its own (another
proposer, a kill) starts it from the shared run's reference, data and control units (tiny_runs.SHARED_STAGES).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tiny_runs import (ENV, REPO, SNAKEMAKE, TIMEOUT, copy_run, outputs_with_mtimes, read_archive, snakemake,
                       start_from_shared_stages, update_config, write_config)

pytestmark = pytest.mark.workflow


def test_run_writes_archive_with_every_record(tiny_run):
    records = read_archive(tiny_run, 1)
    assert [r["id"] for r in records] == ["g0-k0", "g0-k1", "g1-k0", "g1-k1"]
    seeds = records[:2]
    assert [r["library_name"] for r in seeds] == ["dpo", "slic"]
    assert all(r["status"] == "ok" and r["fitness"] is not None for r in seeds)  # trained and scored for real
    for record in records:
        assert record["status"] in {"ok", "invalid", "duplicate", "train_failed", "eval_failed"}
        if record["status"] == "ok":
            metrics = record["metrics"]
            assert record["fitness"] == pytest.approx(metrics["reward"] - 0.05 * metrics["kl"])
            assert record["training"]["steps"] == 2
            assert record["validation"]["curve"]["beta"] == 0.1
        else:
            assert record["error"]
    for record in records[2:]:
        assert record["proposer"]["backend"] == "evolution"
        assert record["parents"] and all(p < record["id"] for p in record["parents"])
    # archive(g) holds every record up to g
    assert [r["id"] for r in read_archive(tiny_run, 0)] == [r["id"] for r in records[:2]]


def test_run_writes_tables_and_figures(tiny_run):
    results = tiny_run / "results" / "tiny"
    for name in ("fitness_over_generations", "objective_shapes", "reward_vs_kl"):
        png = (results / "figures" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
    summary = (results / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("rank,") and len(summary) == 1 + 4
    experiments = (results / "experiments.csv").read_text()
    assert "seed_spread,dpo,0.1" in experiments
    reference = json.loads((results / "reference" / "eval.json").read_text())
    assert reference["metrics"]["kl"] == 0.0


def test_finished_run_has_nothing_to_do(tiny_run):
    result = snakemake(tiny_run, "-n", "all", "experiments", "baselines")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_a_copied_run_is_as_up_to_date_as_its_original(tiny_run, tmp_path):
    """What the tests that change a run rely on: a copy (tiny_runs.copy_run) plans nothing either."""
    copy = copy_run(tiny_run, tmp_path / "run")
    result = snakemake(copy, "-n", "all", "experiments", "baselines")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_raising_generations_reruns_nothing_old(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    before = outputs_with_mtimes(run)
    update_config(run, **{"discovery.generations": 2})
    snakemake(run)
    after = outputs_with_mtimes(run)
    # the run-level aggregates (final archive, verdict) are rebuilt from the longer archive; nothing else is
    changed = sorted(k for k in before if after[k] != before[k] and k not in ("archive.jsonl", "verdict.json"))
    assert changed == [], f"extending the run recomputed {changed}"
    assert [r["id"][:2] for r in read_archive(run, 2)].count("g2") == 2


def test_killed_run_resumes_without_redoing_finished_candidates(tmp_path, tiny_model_dir, tiny_run):
    write_config(tmp_path, tiny_model_dir)
    start_from_shared_stages(tiny_run, tmp_path)
    process = subprocess.Popen([*SNAKEMAKE, "--directory", str(tmp_path)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True, env=ENV)
    first_training = tmp_path / "results" / "tiny" / "gen0" / "cand0" / "train.json"
    # Its evaluation's log appears once Snakemake has recorded the training as finished: a train.json alone may
    # belong to a job still exiting, which Snakemake rightly counts as incomplete and redoes.
    its_evaluation = tmp_path / "results" / "tiny" / "logs" / "gen0" / "cand0" / "evaluate.log"
    deadline = time.monotonic() + TIMEOUT
    while not its_evaluation.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert first_training.exists(), "the run never finished a training"
    os.killpg(process.pid, signal.SIGKILL)  # as a crash or a pre-empted node would: no clean-up
    process.wait()
    finished_mtime = first_training.stat().st_mtime
    assert not (tmp_path / "results" / "tiny" / "gen1" / "archive.jsonl").exists()

    snakemake(tmp_path, "--unlock")  # a killed Snakemake leaves its lock behind, as it says itself
    snakemake(tmp_path, "--rerun-incomplete")
    assert first_training.stat().st_mtime == finished_mtime
    assert len(read_archive(tmp_path, 1)) == 4


def test_config_errors_name_the_key_before_any_job(tmp_path, tiny_model_dir):
    write_config(tmp_path, tiny_model_dir, **{"training.learning_rate": "fast"})
    result = snakemake(tmp_path, check=False)
    assert result.returncode != 0
    assert "learning_rate" in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()

    write_config(tmp_path, tiny_model_dir, **{"discovery.populaton": 3})
    result = snakemake(tmp_path, check=False)
    assert result.returncode != 0 and "populaton" in result.stderr + result.stdout


def test_hostile_and_crashing_candidates_cost_a_record_each_and_the_generation_carries_on(tmp_path, tiny_model_dir,
                                                                                         tiny_run):
    """A replayed generation: a file-writing program and an infinite loop (refused by validation), a SIGSEGV
    program (refused by validation), a SIGFPE program that validation accepts and that crashes only in training
    (its worker dies: train_failed), and a sound objective (CELL), which trains and scores. The run completes."""
    from prefdisco.objectives import library_source

    hostile = REPO / "tests" / "hostile"
    programs = [("objective", "write a file", hostile / "write_marker_open.py"),
                ("objective", "never return", hostile / "infinite_loop.py"),
                ("sigsegv_to_dense", "segfault", hostile / "training" / "sigsegv_to_dense.py"),
                ("sigfpe_integer_division", "SIGFPE in training", hostile / "training" / "sigfpe_integer_division.py")]
    transcript = [{"generation": 1, "name": name, "thought": thought, "code": path.read_text()}
                  for name, thought, path in programs]
    transcript.append({"generation": 1, "name": "combined_exp_logistic_loss", "thought": "CELL",
                       "code": library_source("cell")})
    (tmp_path / "transcript.json").write_text(json.dumps(transcript))
    write_config(tmp_path, tiny_model_dir, **{
        "discovery.seed_objectives": ["dpo"],
        "discovery.proposer": {"backend": "replay", "options": {"transcript": str(tmp_path / "transcript.json")}},
        "sandbox.cpu_seconds": 5, "sandbox.wall_seconds": 20,
    })
    start_from_shared_stages(tiny_run, tmp_path)
    snakemake(tmp_path)
    records = {r["id"]: r for r in read_archive(tmp_path, 1)}
    assert records["g1-k0"]["status"] == "invalid" and "'open' is not allowed" in records["g1-k0"]["error"]
    assert records["g1-k1"]["status"] == "invalid" and "infinite loop" in records["g1-k1"]["error"]
    assert records["g1-k2"]["status"] == "invalid" and "sparse tensors are not available" in records["g1-k2"]["error"]
    assert records["g1-k3"]["status"] == "train_failed", records["g1-k3"]
    assert "crashed with signal SIGFPE" in records["g1-k3"]["error"]
    assert records["g1-k4"]["status"] == "ok" and records["g1-k4"]["fitness"] is not None
    train = json.loads((tmp_path / "results" / "tiny" / "gen1" / "cand4" / "train.json").read_text())
    assert train["status"] == "ok" and train["metrics"]["steps"] == 2
    assert not Path("/tmp/prefdisco_pwned_write_marker_open").exists()
    for refused in range(3):  # never reached training
        assert not (tmp_path / "results" / "tiny" / "gen1" / f"cand{refused}").exists()


def _llm_proposer(url: str, **options) -> dict:
    return {"backend": "openai", "options": {"base_url": url, "model": "scripted", "timeout_seconds": 20,
                                             "max_retries": 2, "backoff_seconds": 0.05, **options}}


def test_llm_generation_records_faults_and_feeds_errors_to_the_next_prompt(tmp_path, tiny_model_dir, tiny_run):
    """Two generations of three, proposed over HTTP by a scripted OpenAI-compatible server on loopback.

    Generation 1: a file-writing program (a valid reply, rejected by the sandbox), an HTTP 500 followed by two
    garbage replies (retried, re-asked once, given up), and a sound objective. Generation 2: a sound objective, a
    behavioural duplicate and an import of os. Generation 2's prompts must carry generation 1's errors. Then, with
    the server gone, generation 3 is recorded as failed requests and the run still finishes; re-proposing
    generation 2 asks nothing: the reply cache answers and the proposals are the same.
    """
    from prefdisco.objectives import library_source
    from loopback import ScriptedServer

    def reply(name: str, code: str) -> tuple[int, str, float]:
        return 200, json.dumps({"thought": f"try {name}", "name": name, "code": code}), 0.0

    script = [
        reply("objective", (REPO / "tests" / "hostile" / "write_marker_open.py").read_text()),
        (500, "overloaded", 0.0), (200, "Sure! Here is a loss: hinge.", 0.0), (200, "still no JSON", 0.0),
        reply("combined_exp_logistic_loss", library_source("cell")),
        reply("adaptive_quantile_loss", library_source("aql")),
        reply("cell_again", library_source("cell").replace("combined_exp_logistic_loss", "cell_again")),
        reply("os_loss", "import os\n" + library_source("dpo")),
    ]
    with ScriptedServer(script) as server:
        write_config(tmp_path, tiny_model_dir, **{
            "discovery.generations": 2, "discovery.population": 3, "discovery.seed_objectives": ["dpo"],
            "discovery.proposer": _llm_proposer(server.url, prices={"input": 10.0, "output": 30.0}),
        })
        start_from_shared_stages(tiny_run, tmp_path)
        snakemake(tmp_path)
        requests = list(server.requests)

    records = {r["id"]: r for r in read_archive(tmp_path, 2)}
    assert records["g1-k0"]["status"] == "invalid" and "'open' is not allowed" in records["g1-k0"]["error"]
    assert records["g1-k1"]["status"] == "invalid"
    assert records["g1-k1"]["error"].startswith("no code: malformed reply after one corrective re-ask")
    assert records["g1-k2"]["status"] == "ok" and records["g1-k2"]["fitness"] is not None
    assert records["g2-k0"]["status"] == "ok" and records["g2-k0"]["name"] == "adaptive_quantile_loss"
    assert records["g2-k1"]["status"] == "duplicate" and records["g2-k1"]["duplicate_of"] == "g1-k2"
    assert records["g2-k2"]["status"] == "invalid" and "os" in records["g2-k2"]["error"]
    assert records["g1-k2"]["usage"] == {"prompt_tokens": 100, "completion_tokens": 10, "cost_usd": 0.0013,
                                         "cached": False}
    assert len(requests) == 8
    for request in requests[5:]:  # every prompt of generation 2 carries generation 1's outcomes
        prompt = request["messages"][1]["content"]
        assert "'open' is not allowed" in prompt and "Error: no code: malformed reply" in prompt
        fitness, versus = records["g1-k2"]["intervals"]["fitness"], records["g1-k2"]["intervals"]["vs_control"]
        assert (f"Fitness: {fitness['mean']:.3f} [{fitness['low']:.3f}, {fitness['high']:.3f}]; "
                f"vs DPO {versus['mean']:+.3f} [{versus['low']:+.3f}, {versus['high']:+.3f}]") in prompt
    transcripts = tmp_path / "results" / "tiny" / "gen1" / "transcripts"
    assert "HTTP 500" in (transcripts / "g1-k1.md").read_text()
    assert not Path("/tmp/prefdisco_pwned_write_marker_open").exists()
    summary = (tmp_path / "results" / "tiny" / "summary.md").read_text()
    assert "Proposer usage: 6 LLM proposals, 700 prompt + 70 completion tokens, $0.0091." in summary

    update_config(tmp_path, **{"discovery.generations": 3})  # nobody listens at the server's address any more
    snakemake(tmp_path)
    records = read_archive(tmp_path, 3)
    assert [r["status"] for r in records if r["id"].startswith("g3")] == ["invalid"] * 3
    for record in records[-3:]:
        assert record["error"].startswith("no code: proposer request failed: APIConnectionError"), record["error"]
    assert "g3-k2" in (tmp_path / "results" / "tiny" / "summary.csv").read_text()

    proposals = tmp_path / "results" / "tiny" / "gen2" / "proposals.json"
    before = json.loads(proposals.read_text())
    target = str(proposals.relative_to(tmp_path))
    snakemake(tmp_path, target, "--forcerun", target)  # that file alone: what reads it is not the point here
    after = json.loads(proposals.read_text())
    assert [(p["code"], p["thought"]) for p in after] == [(p["code"], p["thought"]) for p in before]
    assert all(p["usage"]["cached"] for p in after)
    log = (tmp_path / "results" / "tiny" / "logs" / "gen2" / "propose.log").read_text()
    assert "3 of 3 proposals answered from the reply cache" in log


def test_llm_generation_against_a_real_llama_server(tmp_path, tiny_model_dir, tiny_run, llama_url):
    """A real workflow generation proposed by SmolLM2-135M behind llama.cpp's OpenAI-compatible server."""
    write_config(tmp_path, tiny_model_dir, **{
        "discovery.generations": 1, "discovery.population": 2, "discovery.seed_objectives": ["dpo"],
        "discovery.proposer": {"backend": "openai", "options": {
            "base_url": llama_url, "model": "smollm2", "max_tokens": 256, "temperature": 0.7,
            "timeout_seconds": 120, "max_retries": 1, "context_best": 1, "context_recent": 1}},
    })
    start_from_shared_stages(tiny_run, tmp_path)
    snakemake(tmp_path)
    records = read_archive(tmp_path, 1)
    assert [r["id"] for r in records] == ["g0-k0", "g1-k0", "g1-k1"]
    for record in records[1:]:
        assert record["proposer"]["backend"] == "openai" and record["proposer"]["model"] == "smollm2"
        assert record["usage"]["prompt_tokens"] > 0 and record["usage"]["completion_tokens"] > 0
        assert record["status"] in {"ok", "invalid", "duplicate", "train_failed", "eval_failed"}
        assert record["status"] == "ok" or record["error"]
        transcript = tmp_path / "results" / "tiny" / "gen1" / "transcripts" / f"{record['id']}.md"
        assert "## reply 0" in transcript.read_text()
