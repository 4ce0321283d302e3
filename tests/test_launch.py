"""Multi-process training: the accelerate configs kept in src/prefdisco/accelerate/, and a real two-process run of the
training entry point through its launcher (accelerate, DDP over gloo on the CPU: the GPU count is injected)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO
from prefdisco import devices
from prefdisco.stages.candidates import experiment_spec
from prefdisco.io import write_json, write_jsonl
from prefdisco.launch import accelerate_command, relaunch
from prefdisco.models import load_causal_lm, load_tokenizer, reference_path
from prefdisco.trainer import TrainingOptions, compute_reference_logps

CONFIGS = REPO / "src" / "prefdisco" / "accelerate"
# 16 pairs; one has a long chosen completion, so its reference log-prob is far below every other's.
PAIRS = [{"pair_id": f"p{i}", "prompt": f"Review {i}: the film", "chosen": " was a delight.", "rejected": " dragged."}
         for i in range(15)]
PAIRS.append({"pair_id": "long", "prompt": "Review 15: the film", "rejected": " dragged.",
              "chosen": " was a delight from the first scene to the last, with a cast that carries every moment and "
                        "a score that lifts the whole story."})
TRAINING = {"batch_size": 2, "max_steps": 4, "max_length": 64, "device": "cpu", "precision": "fp32",
            "learning_rate": 1e-3, "trainable_layers": None, "distributed": "ddp"}
# Not a number only on the batch that holds the long pair, so only in one of the two processes (the NaN is
# added outside the gradient's path, so the other batches' gradients stay finite).
NAN_ON_LONG_PAIR = """
def nan_on_long_pair(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(self.beta * logits)
    long_pair = reference_chosen_logps < -150.0
    return losses + torch.where(long_pair, torch.full_like(losses, math.nan), torch.zeros_like(losses)).detach()
"""


def accelerate_settings(name: str, processes: int = 8):
    """The config as `accelerate launch` reads and checks it, with the environment it gives the processes."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(
        ["--config_file", str(CONFIGS / f"{name}.yaml"), "--num_processes", str(processes), "-m", "prefdisco.stages.train"])
    args, defaults, _ = _validate_launch_command(args)
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    return args, env


def test_deepspeed_zero3_config_is_valid_for_accelerate():
    from accelerate.utils import DeepSpeedPlugin, patch_environment

    args, env = accelerate_settings("deepspeed_zero3")
    assert args.use_deepspeed and args.num_processes == 8  # the launcher's count wins over the file's
    with patch_environment(**env):
        plugin = DeepSpeedPlugin()
    assert plugin.zero_stage == 3
    assert plugin.deepspeed_config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_fsdp_config_is_valid_for_accelerate():
    from accelerate.utils import constants

    args, env = accelerate_settings("fsdp")
    assert args.use_fsdp and args.num_processes == 8
    assert env["FSDP_SHARDING_STRATEGY"] in constants.FSDP_SHARDING_STRATEGY
    assert env["FSDP_AUTO_WRAP_POLICY"] in constants.FSDP_AUTO_WRAP_POLICY
    assert env["FSDP_BACKWARD_PREFETCH"] in constants.FSDP_BACKWARD_PREFETCH
    assert env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT"  # the policy is saved as one transformers folder
    assert env["FSDP_USE_ORIG_PARAMS"] == "true"  # frozen and trained parameters (trainable_layers) in one unit


def test_ddp_config_is_valid_for_accelerate():
    args, _ = accelerate_settings("ddp", processes=2)
    assert args.multi_gpu and args.num_processes == 2


def test_launch_command_takes_the_process_count_and_a_free_port():
    command = accelerate_command("prefdisco.stages.train", ["--gpus", "8"], 8, CONFIGS / "fsdp.yaml", 29611)
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "8"
    assert command[command.index("--main_process_port") + 1] == "29611"
    assert command[-4:] == ["--module", "prefdisco.stages.train", "--gpus", "8"]


@pytest.mark.skipif(__import__("importlib").util.find_spec("deepspeed") is not None, reason="deepspeed is installed")
def test_zero3_without_deepspeed_is_a_clear_error():
    with pytest.raises(RuntimeError, match="pip install deepspeed.*training.distributed"):
        relaunch("prefdisco.stages.train", [], 8, CONFIGS / "deepspeed_zero3.yaml")


@pytest.fixture(scope="module")
def training_inputs(tmp_path_factory, tiny_model_dir) -> Path:
    folder = tmp_path_factory.mktemp("launch")
    write_json(folder / "reference.json", {"source": str(tiny_model_dir), "path": str(tiny_model_dir)})
    write_jsonl(folder / "pairs.jsonl", PAIRS)
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    logps = compute_reference_logps(model, load_tokenizer(tiny_model_dir), PAIRS,
                                    TrainingOptions(**TRAINING), folder / "scratch")
    chosen = sorted(r["ref_chosen_logps"] for r in logps)
    assert chosen[0] < -150 < chosen[1]  # the objective below tells the long pair apart
    write_jsonl(folder / "reference_logps.jsonl", logps)
    return folder


def train_on_two_gpus(inputs: Path, out: Path, objective: dict) -> tuple[subprocess.CompletedProcess, dict]:
    """`python -m prefdisco.stages.train --gpus 2`, as the train rule runs it, on a machine that says it has two GPUs."""
    write_json(out / "objective.json", objective)
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", devices.ASSIGNED_ENV)}
    env.update({devices.POOL_ENV: "0,1", devices.LOCK_DIR_ENV: str(out / "locks"),
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])})
    command = [sys.executable, "-m", "prefdisco.stages.train", "--objective", str(out / "objective.json"),
               "--reference", str(inputs / "reference.json"), "--pairs", str(inputs / "pairs.jsonl"),
               "--reference-logps", str(inputs / "reference_logps.jsonl"), "--training", json.dumps(TRAINING),
               "--threads", "1", "--gpus", "2",
               "--policy-dir", str(out / "policy"), "--output", str(out / "train.json")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:  # a process left waiting for the other one: the whole group goes
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(f"training did not finish in 180 s:\n{output[-3000:]}")
    result = subprocess.CompletedProcess(command, process.returncode, output)
    assert result.returncode == 0, output[-4000:]
    return result, json.loads((out / "train.json").read_text())


def test_training_runs_as_two_processes_through_the_launcher(training_inputs, tmp_path):
    result, record = train_on_two_gpus(training_inputs, tmp_path, experiment_spec("ddp/dpo", "dpo", 0.1, 0))
    assert "launching 2 processes" in result.stdout
    assert record["status"] == "ok" and record["processes"] == 2
    assert record["metrics"]["steps"] == 4
    assert record["metrics"]["epoch"] == pytest.approx(1.0)  # 4 steps x 2 processes x 2 pairs = all 16 pairs
    assert result.stdout.count("candidate ddp/dpo: ok") == 1  # one process writes the outputs
    policy = load_causal_lm(tmp_path / "policy", torch.device("cpu"))
    reference = load_causal_lm(reference_path(training_inputs / "reference.json"), torch.device("cpu"))
    changed = [n for (n, p), (_, q) in zip(policy.named_parameters(), reference.named_parameters()) if not torch.equal(p, q)]
    assert changed, "the saved policy is the reference: training did not reach it"


def test_an_objective_failing_in_one_process_stops_both(training_inputs, tmp_path):
    spec = {"id": "ddp/nan", "name": "nan_on_long_pair", "code": NAN_ON_LONG_PAIR}
    result, record = train_on_two_gpus(training_inputs, tmp_path, spec)
    assert record["status"] == "train_failed"
    assert "non-finite loss" in record["error"] or "another training process" in record["error"]
