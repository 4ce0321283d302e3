"""Stage: score a trained policy on the task's held-out prompts and compute its fitness.

Without ``--policy-dir`` it scores the reference itself (KL 0), the origin every candidate is compared with.
With ``--judged`` (config ``fitness.benchmark: mt_bench``) the reward is the policy's MT-Bench score from the judging
stages; a task's own reward, if it has one, is kept as ``task_reward``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from ..cli import json_option, setup_logging
from ..devices import assign_gpus
from ..errors import truncate_error
from ..io import provenance, read_json, write_json
from ..models import load_for_inference, load_tokenizer, precision_of, set_threads, reference_path
from ..records import EVAL_FAILED, OK
from ..tasks import get_task

log = logging.getLogger(__name__)


def fitness(metrics: dict, kl_penalty: float) -> float:
    """Held-out reward minus a KL penalty: a candidate cannot win by drifting arbitrarily far from the reference."""
    return metrics["reward"] - kl_penalty * metrics["kl"]


def judged_metrics(judged: dict) -> dict:
    """The benchmark score as the reward, with its breakdown and what the judge cost."""
    benchmark = judged.get("benchmark", "mt_bench")
    breakdown = {k: judged.get(k) for k in ("score", "score_sem", "turn_1", "turn_2", "categories", "n_judgments",
                                            "n_unparsed", "judge", "answers_wall_seconds", "wall_seconds")}
    metrics = {"reward": judged.get("score"), "reward_sem": judged.get("score_sem"), benchmark: breakdown}
    if judged.get("per_question") is not None:  # null for a question with no parsed rating: kept, for pairing
        metrics["per_prompt"] = {"reward": judged["per_question"]}
    return metrics


def run_evaluation(task_name: str, task_options: dict, reference_json: Path, heldout: list, seed: int,
                   kl_penalty: float, device_name: str, policy_dir: Path | None, train_record: dict | None,
                   judged: dict | None = None, precision: str = "auto") -> dict:
    started = time.monotonic()
    candidate_id = train_record["id"] if train_record else "reference"
    if train_record is not None and train_record["status"] != OK:
        return {"id": candidate_id, "status": train_record["status"], "fitness": None, "metrics": {},
                "error": train_record["error"] and truncate_error(train_record["error"]), "wall_seconds": 0.0}
    if judged is not None and judged.get("status") != OK:  # no answers, or no rating the judge's replies parse to
        return {"id": candidate_id, "status": EVAL_FAILED, "fitness": None,
                "metrics": judged_metrics(judged) if judged.get("judge") else {},
                "error": judged.get("error") and truncate_error(judged["error"]),
                "wall_seconds": time.monotonic() - started}
    task = get_task(task_name)
    options = task.to_options(task_options)
    model_dir = reference_path(reference_json)
    tokenizer = load_tokenizer(model_dir)
    reference = load_for_inference(model_dir, device_name, precision)
    # The reference is read once: a top-layers policy is a copy of it with the trained tensors put back.
    policy = (reference if policy_dir is None
              else load_for_inference(model_dir, device_name, precision, policy_dir, reference=reference))
    device = policy.device
    broken = [name for name, p in policy.named_parameters() if not torch.isfinite(p).all()]
    if broken:  # a candidate objective can train weights into NaN without its loss ever being non-finite
        return {"id": candidate_id, "status": EVAL_FAILED, "fitness": None, "metrics": {},
                "error": f"trained policy has non-finite weights in {len(broken)} tensors, e.g. {broken[0]}",
                "wall_seconds": time.monotonic() - started}
    metrics = task.score(policy, None if policy_dir is None else reference, tokenizer, heldout, options, seed)
    if judged is not None:
        if "reward" in metrics:
            metrics["task_reward"] = metrics.pop("reward")
            metrics["task_reward_sem"] = metrics.pop("reward_sem", None)
        task_per_prompt = metrics.pop("per_prompt", {})
        metrics.update(judged_metrics(judged))
        # The judged reward is per benchmark question, the KL per held-out prompt: two lists of their own lengths.
        metrics["per_prompt"] = {**{k: v for k, v in task_per_prompt.items() if k != "reward"},
                                 **metrics.get("per_prompt", {})}
    elif "reward" not in metrics and not getattr(task, "JUDGED_SEPARATELY", False):
        raise ValueError(f"task {task_name!r} has no reward of its own: set fitness.benchmark to mt_bench")
    # A task judged by its own target (tldr: win rates) has KL here and no fitness.
    score_value = fitness(metrics, kl_penalty) if "reward" in metrics else None
    return {"id": candidate_id, "status": OK, "fitness": score_value, "metrics": metrics,
            "error": None, "kl_penalty": kl_penalty, "sampling_seed": seed, "device": str(device),
            "precision": precision_of(policy), "wall_seconds": time.monotonic() - started,
            "device_seconds": time.monotonic() - started if device.type == "cuda" else 0.0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--options", type=json_option, default={}, help="task options (JSON)")
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, required=True)
    parser.add_argument("--train-record", type=Path, default=None, help="train.json of the candidate")
    parser.add_argument("--policy-dir", type=Path, default=None, help="omit to score the reference itself")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kl-penalty", type=float, default=0.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="training.precision: auto, fp32, bf16 or fp16")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--judged", type=Path, default=None, help="MT-Bench scores JSON: its score is the reward")
    parser.add_argument("--gpus", type=int, default=None, help="GPUs of this job, its own (resources.gpu)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    assign_gpus(args.gpus)
    set_threads(args.threads)
    if (args.train_record is None) != (args.policy_dir is None):
        parser.error("--train-record and --policy-dir go together")

    train_record = read_json(args.train_record) if args.train_record else None
    judged = read_json(args.judged) if args.judged else None
    record = run_evaluation(args.task, args.options, args.reference, read_json(args.heldout), args.seed,
                            args.kl_penalty, args.device, args.policy_dir, train_record, judged, args.precision)
    record["inputs"] = provenance(args.train_record, args.reference, args.heldout, args.judged)
    write_json(args.output, record)
    log.info("%s: %s, fitness %s", record["id"], record["status"], record["fitness"])


if __name__ == "__main__":
    main()
