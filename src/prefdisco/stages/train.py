"""Stage: fine-tune the reference with one candidate objective (a discovery candidate or a fixed experiment).

Writes ``train.json`` (status, metrics, error, timings) and the policy. A failure of the candidate's own code
is a result (``train_failed``), recorded so the generation carries on; any other failure fails the job.

The candidate's code never runs in this process: a confined worker (sandbox.worker) started per job, with the
limits of the config's ``sandbox`` section per call, computes its losses and gradients.

A job given several GPUs (``--gpus``, the rule's ``resources.gpu``) re-runs this entry point under accelerate,
one process per GPU (:mod:`prefdisco.launch`); every process trains its shard, the first one writes the outputs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..cli import json_option, setup_logging
from ..devices import assign_gpus
from ..io import provenance, read_json, read_jsonl, write_json
from ..launch import accelerate_config_file, is_main_process, launched, relaunch, world_size
from ..models import (
    load_causal_lm,
    load_tokenizer,
    master_weights_precision,
    resolve_device,
    reference_path,
    resolve_precision,
    set_threads,
)
from ..trained_policy import save_policy
from ..records import OK, TRAIN_FAILED
from ..errors import truncate_error
from ..sandbox.static_policy import PolicyViolation, check_source
from ..sandbox.runner import SandboxLimits
from ..sandbox.worker import ObjectiveWorker
from ..shared_layers import FrozenStates
from ..trainer import (
    CandidateError,
    TrainingOptions,
    attach_reference_logps,
    batching_record,
    summarise_history,
    train_objective,
    trainable_parameter_names,
)

log = logging.getLogger(__name__)


def run_training(objective_spec: dict, reference_json: Path, pairs: list[dict], reference_logps: list[dict],
                 options: TrainingOptions, policy_dir: Path, limits: SandboxLimits = SandboxLimits(),
                 frozen_states: FrozenStates | None = None) -> dict:
    """Train one candidate, its objective served by a confined worker under ``limits`` per call; returns its
    training record. ``frozen_states``: the reference_logps stage's states of the frozen bottom layers."""
    options = replace(options, **objective_spec.get("training_overrides", {}))
    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)
    processes = world_size()
    record = {"id": objective_spec["id"], "status": OK, "error": None, "device": str(device),
              "processes": processes, "precision": precision, "options": asdict(options)}
    started = time.monotonic()
    try:
        check_source(objective_spec["code"])  # a cheap early refusal: static, it executes nothing
    except PolicyViolation as violation:
        return _failed(record, objective_spec["id"], f"the static policy refused the objective: {violation}",
                       policy_dir, started)
    model_dir = reference_path(reference_json)
    # With several processes the trainer places (or shards) the model itself: each process loading onto "cuda"
    # would put every copy on the first device.
    weights = master_weights_precision(precision, processes, options.distributed)
    record["master_weights"] = weights
    model = load_causal_lm(model_dir, torch.device("cpu") if processes > 1 else device, weights)
    trained_names = trainable_parameter_names(model, options.trainable_layers)  # before any wrapper renames them
    tokenizer = load_tokenizer(model_dir)
    dataset = attach_reference_logps(pairs, reference_logps)
    record["batching"] = batching_record(len(dataset), options.batch_size, processes)
    # Each process (rank) its own worker; it starts while the model loads and is gone when training ends.
    with tempfile.TemporaryDirectory() as scratch, ObjectiveWorker(objective_spec["code"], limits) as worker:
        try:
            trainer, history = train_objective(model, tokenizer, dataset, worker, options, Path(scratch), frozen_states)
        except CandidateError as error:
            return _failed(record, objective_spec["id"], str(error), policy_dir, started)
        save_policy(trainer, model_dir, policy_dir, trained_names)
    # How many steps started from the recorded states of the frozen layers, rather than from a whole forward pass.
    record["frozen_state_steps"] = trainer.frozen_steps
    record["metrics"] = summarise_history(history)
    record["history"] = history
    record["wall_seconds"] = time.monotonic() - started
    record["device_seconds"] = record["wall_seconds"] * processes if device.type == "cuda" else 0.0
    return record


def _failed(record: dict, candidate_id: str, error: str, policy_dir: Path, started: float) -> dict:
    error = truncate_error(error)
    log.warning("candidate %s failed in training: %s", candidate_id, error)
    record.update(status=TRAIN_FAILED, error=error, metrics={}, history=[])
    Path(policy_dir).mkdir(parents=True, exist_ok=True)
    record["wall_seconds"] = time.monotonic() - started
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", type=Path, required=True, help="objective.json of the candidate")
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--reference-logps", type=Path, required=True)
    parser.add_argument("--training", type=json_option, default={}, help="training options (JSON)")
    parser.add_argument("--sandbox", type=json_option, default={}, help="limits of one objective call in the worker "
                        "(JSON: the config's sandbox section, cpu_seconds, memory_mb, wall_seconds)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gpus", type=int, default=None, help="GPUs of this job, its own (resources.gpu); more "
                        "than one: one process per GPU under accelerate")
    parser.add_argument("--accelerate-config", type=Path, default=None,
                        help="accelerate config for more than one GPU; default: the one of training.distributed "
                        "(prefdisco/accelerate/<name>.yaml)")
    parser.add_argument("--frozen-states", type=Path, default=None, help="the reference_logps stage's states of the "
                        "frozen bottom layers (.pt)")
    parser.add_argument("--policy-dir", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="train.json")
    args = parser.parse_args(argv)
    setup_logging()
    gpus = assign_gpus(args.gpus)
    if len(gpus) > 1 and not launched():
        config_file = args.accelerate_config or accelerate_config_file(TrainingOptions(**args.training).distributed)
        sys.exit(relaunch(__spec__.name, sys.argv[1:] if argv is None else argv, len(gpus), config_file))
    set_threads(args.threads)

    spec = read_json(args.objective)
    record = run_training(spec, args.reference, read_jsonl(args.pairs), read_jsonl(args.reference_logps),
                          TrainingOptions(**args.training), args.policy_dir, SandboxLimits(**args.sandbox),
                          FrozenStates.load(args.frozen_states) if args.frozen_states else None)
    if is_main_process():
        record["inputs"] = provenance(args.objective, args.reference, args.pairs, args.reference_logps,
                                      args.frozen_states)
        write_json(args.output, record)
        log.info("candidate %s: %s (%.1f s)", spec["id"], record["status"], record["wall_seconds"])


if __name__ == "__main__":
    main()
