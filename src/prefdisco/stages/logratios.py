"""Stage: beta-scaled log-ratio differences of the training pairs under a trained policy (the paper's Fig. 14).

For every pair, rho = beta * ((log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))), with the policy's
log-probs computed through the trainer's own tokenisation (as the reference ones were) and the run's shared
reference log-probs.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from ..cli import json_option, setup_logging
from ..devices import assign_gpus
from ..io import read_json, read_jsonl, write_json
from ..models import load_tokenizer, resolve_device, resolve_precision, set_threads, reference_path
from ..trained_policy import load_policy
from ..trainer import TrainingOptions, compute_reference_logps

log = logging.getLogger(__name__)


def log_ratio_differences(policy_logps: list[dict], reference_logps: list[dict], beta: float) -> list[float]:
    reference = {r["pair_id"]: r for r in reference_logps}
    return [beta * ((p["ref_chosen_logps"] - reference[p["pair_id"]]["ref_chosen_logps"])
                    - (p["ref_rejected_logps"] - reference[p["pair_id"]]["ref_rejected_logps"]))
            for p in policy_logps if p["pair_id"] in reference]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--policy-dir", type=Path, required=True)
    parser.add_argument("--train-record", type=Path, required=True)
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--reference-logps", type=Path, required=True)
    parser.add_argument("--training", type=json_option, default={})
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gpus", type=int, default=None)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    assign_gpus(args.gpus)
    set_threads(args.threads)
    record = read_json(args.train_record)
    if record["status"] != "ok":
        raise ValueError(f"{args.train_record}: unit {record['id']} did not train ({record['status']}): no policy")
    options = TrainingOptions(**{**args.training, **{k: v for k, v in record["options"].items() if k in ("beta", "seed")}})
    device = resolve_device(options.device)
    model = load_policy(args.policy_dir, device, resolve_precision(options.precision, device))
    tokenizer = load_tokenizer(reference_path(args.reference))
    with tempfile.TemporaryDirectory() as scratch:
        policy_logps = compute_reference_logps(model, tokenizer, read_jsonl(args.pairs), options, Path(scratch))
    values = log_ratio_differences(policy_logps, read_jsonl(args.reference_logps), options.beta)
    write_json(args.output, {"unit": record["id"], "beta": options.beta, "n_pairs": len(values), "values": values})
    log.info("%d log-ratio differences of %s", len(values), record["id"])


if __name__ == "__main__":
    main()
