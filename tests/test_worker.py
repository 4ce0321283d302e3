"""The confined objective worker on the training path: hostile programs written against the trainer, the job
surviving them, and the worker's own walls with the static policy bypassed.

Programs live in tests/hostile/training/, each with a header:

    # <what it tries>
    # expect: <substring of the validation error (invalid) or of train.json's error (train_failed)>
    # worker: <substring of the training error with the static policy bypassed>, or "ok" (trains, nothing
    #         tampered with), or "any" (corrupts the worker's own memory: whatever happens, the trainer is intact)

A whole generation with a crashing candidate goes through Snakemake in tests/test_workflow.py (the hostile run).
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from conftest import REPO
from prefdisco.errors import CandidateError
from prefdisco.io import write_json, write_jsonl
from prefdisco.models import load_causal_lm, load_tokenizer
from prefdisco.objectives import library_source
from prefdisco.sandbox.runner import SandboxLimits, validate_programs
from prefdisco.sandbox.worker import ObjectiveWorker
from prefdisco.stages.train import run_training
from prefdisco.trainer import TrainingOptions, attach_reference_logps, compute_reference_logps, train_objective
from unchecked_worker import COMMAND as UNCHECKED_WORKER

PROGRAMS = sorted((Path(__file__).parent / "hostile" / "training").glob("*.py"))
# Tight per-call limits keep the hangs short; a tiny model's call takes milliseconds.
LIMITS = SandboxLimits(cpu_seconds=5, memory_mb=4096, wall_seconds=5.0)
TRAINING = {"beta": 0.1, "batch_size": 4, "max_steps": 2, "max_length": 64, "device": "cpu", "precision": "fp32",
            "learning_rate": 1e-3, "trainable_layers": 1, "lr_scheduler": "constant"}
PAIRS = [{"pair_id": f"p{i}", "prompt": f"Review {i}: the film", "chosen": " was a delight.", "rejected": " dragged on."}
         for i in range(8)]
MARKERS = os.path.join(tempfile.gettempdir(), "prefdisco_pwned_*")
SIGNATURE = "self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps"


def header(path: Path, key: str) -> str:
    match = re.search(rf"^# {key}: (.+)$", path.read_text(), re.MULTILINE)
    assert match, f"{path.name} lacks its '# {key}:' header"
    return match.group(1)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_model_dir) -> Path:
    folder = tmp_path_factory.mktemp("worker-inputs")
    write_json(folder / "reference.json", {"source": str(tiny_model_dir), "path": str(tiny_model_dir)})
    write_jsonl(folder / "pairs.jsonl", PAIRS)
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    logps = compute_reference_logps(model, load_tokenizer(tiny_model_dir), PAIRS, TrainingOptions(**TRAINING),
                                    folder / "scratch")
    write_jsonl(folder / "reference_logps.jsonl", logps)
    (folder / "logps.json").write_text(json.dumps(logps))
    return folder


@pytest.fixture(scope="module")
def validation() -> dict[str, dict]:
    results = validate_programs([(path.stem, path.read_text()) for path in PROGRAMS], beta=0.1,
                                limits=SandboxLimits(cpu_seconds=20, wall_seconds=60))
    return {result["id"]: result for result in results}


def test_the_training_corpus_holds_the_thirteen_programs():
    assert len(PROGRAMS) == 13


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_training_path_program_ends_invalid_or_train_failed(path, validation, inputs, tmp_path):
    """Through the workflow's own path: validation, then (if valid) the train stage with its worker."""
    expect = header(path, "expect")
    result = validation[path.stem]
    if not result["valid"]:
        assert expect in result["error"], result["error"]
        return
    spec = {"id": path.stem, "name": path.stem, "code": path.read_text()}
    record = run_training(spec, inputs / "reference.json", PAIRS, json.loads((inputs / "logps.json").read_text()),
                          TrainingOptions(**TRAINING), tmp_path / "policy", LIMITS)
    assert record["status"] == "train_failed", record
    assert expect in record["error"], record["error"]
    assert len(record["error"]) < 5000 and record["metrics"] == {} and record["history"] == []
    assert glob.glob(MARKERS) == []


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_worker_walls_hold_without_the_static_policy(path, inputs, tiny_model_dir, tmp_path):
    """The same programs, loaded by a test-only worker that skips the static policy: confinement, the audit hook
    and the per-call limits alone keep the trainer, its parameters and its metrics intact."""
    expect = header(path, "worker")
    dataset = attach_reference_logps(PAIRS, json.loads((inputs / "logps.json").read_text()))
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    history = None
    with ObjectiveWorker(path.read_text(), LIMITS, command=UNCHECKED_WORKER) as worker:
        try:
            _, history = train_objective(model, load_tokenizer(tiny_model_dir), dataset, worker,
                                         TrainingOptions(**TRAINING), tmp_path / "run")
            outcome = "ok"
        except CandidateError as error:
            outcome = str(error)
    if expect != "any":
        assert expect in outcome if expect != "ok" else outcome == "ok", outcome
    assert len(outcome) < 5000
    for name, parameter in model.named_parameters():
        if name.startswith(("model.layers.1.", "model.norm")):
            assert torch.isfinite(parameter).all() and not torch.equal(parameter, torch.zeros_like(parameter)), name
        else:  # below the trained layer: no candidate reaches it, not even by walking the graph
            assert torch.equal(parameter, before[name]), name
    if history is not None:  # the logged log-probs are the model's, not the worker's copy
        logged = [entry["logps/chosen"] for entry in history if "logps/chosen" in entry]
        assert logged and all(value < 0 for value in logged), logged
    assert glob.glob(MARKERS) == []


def test_a_crashing_candidate_costs_a_record_not_the_job(inputs, tmp_path):
    """`python -m prefdisco.stages.train`, as the train rule runs it: SIGFPE in the worker, exit 0, train.json written."""
    program = next(p for p in PROGRAMS if p.stem == "sigfpe_integer_division")
    write_json(tmp_path / "objective.json", {"id": "gen1/cand0", "name": "sigfpe", "code": program.read_text()})
    command = [sys.executable, "-m", "prefdisco.stages.train", "--objective", str(tmp_path / "objective.json"),
               "--reference", str(inputs / "reference.json"), "--pairs", str(inputs / "pairs.jsonl"),
               "--reference-logps", str(inputs / "reference_logps.jsonl"), "--training", json.dumps(TRAINING),
               "--sandbox", json.dumps(LIMITS.__dict__), "--threads", "1", "--policy-dir", str(tmp_path / "policy"),
               "--output", str(tmp_path / "train.json")]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "train.json").read_text())
    assert record["status"] == "train_failed"
    assert "crashed with signal SIGFPE during a call (at step 0)" in record["error"]


def call_worker(code: str, batch: int = 4, limits: SandboxLimits = LIMITS, **kwargs):
    generator = torch.Generator().manual_seed(batch)
    vectors = [-50.0 - 10.0 * torch.rand(batch, generator=generator) for _ in range(4)]
    with ObjectiveWorker(code, limits, **kwargs) as worker:
        return worker.evaluate(0.1, *vectors), vectors


def test_worker_returns_the_losses_and_the_gradients_of_their_mean():
    (losses, grad_chosen, grad_rejected), (pc, pr, rc, rr) = call_worker(library_source("dpo"), batch=5)
    chosen, rejected = pc.double().requires_grad_(), pr.double().requires_grad_()
    expected = -torch.nn.functional.logsigmoid(0.1 * ((chosen - rc.double()) - (rejected - rr.double())))
    torch.testing.assert_close(losses, expected.detach())
    for got, want in zip((grad_chosen, grad_rejected), torch.autograd.grad(expected.mean(), (chosen, rejected))):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize(("body", "reason"), [
    ("return policy_chosen_logps.detach() * 1.0", "do not depend differentiably"),
    ("return torch.exp(-1000.0 * policy_chosen_logps)", "non-finite loss (inf)"),
    ("return policy_chosen_logps.mean()", "a scalar (shape ())"),
    ("return (policy_chosen_logps * 0.0).long()", "dtype torch.int64"),
])
def test_worker_refuses_a_bad_result(body, reason):
    code = f"def bad({SIGNATURE}):\n    {body}\n"
    with pytest.raises(CandidateError, match=re.escape(reason)):
        call_worker(code)


def test_an_oversized_reply_kills_the_worker(tmp_path):
    """A worker that answers with more than the protocol allows is killed, not read (a stand-in worker script)."""
    script = tmp_path / "flooding_worker.py"
    script.write_text("import os, struct, sys\nos.write(1, b'C')\nos.write(1, struct.pack('<BI', 1, 10**9))\n"
                      "sys.stdin.buffer.read()\n")
    with pytest.raises(CandidateError, match="oversized error"):
        call_worker(library_source("dpo"), command=[sys.executable, str(script)])


def test_a_worker_that_cannot_start_is_a_fault_of_the_workflow(tmp_path):
    """A crash before the worker confines itself (no candidate code has run) fails the job instead of blaming the
    candidate."""
    with pytest.raises(RuntimeError, match="exited before confining itself") as failure:
        call_worker(library_source("dpo"), command=[sys.executable, "-c", "raise SystemExit(3)"])
    assert not isinstance(failure.value, CandidateError)


def test_the_worker_is_confined(tmp_path):
    """Trusted probe code run where the candidate would be loaded (after confinement, audit hook disarmed): the
    kernel's walls alone stop it writing a file, reading the project, connecting to a loopback port, or
    starting a process."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    with listener, pytest.raises(CandidateError) as failure:
        call_worker(library_source("dpo"), command=[*UNCHECKED_WORKER, "probe", str(REPO / "README.md"), str(port)])
    outcomes = json.loads(re.search(r"\{.*\}", str(failure.value)).group(0))
    assert outcomes["write /tmp"] != "allowed" and outcomes["read the project"] != "allowed", outcomes
    assert outcomes["connect to loopback"] != "allowed" and outcomes["fork"] != "allowed", outcomes
    assert glob.glob(MARKERS) == []
