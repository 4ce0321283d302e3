"""Stage: reference log-probs of every preference pair, computed once per (reference, dataset) and shared by
every candidate's training, so no candidate runs a reference forward pass.

With ``training.trainable_layers`` set, the same pass also keeps the hidden states entering the first trained layer
(``--states-output``): every training job then runs only its top layers (see shared_layers.FrozenStates)."""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from ..cli import json_option, setup_logging
from ..devices import assign_gpus
from ..io import read_jsonl, write_jsonl
from ..models import (
    load_causal_lm,
    load_tokenizer,
    master_weights_precision,
    resolve_device,
    reference_path,
    resolve_precision,
    set_threads,
)
from ..shared_layers import FrozenStates
from ..trainer import TrainingOptions, compute_reference_logps

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--training", type=json_option, default={}, help="training options (JSON)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gpus", type=int, default=None, help="GPUs of this job, its own (resources.gpu)")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--states-output", type=Path, default=None, help="the frozen bottom layers' states (.pt)")
    args = parser.parse_args(argv)
    setup_logging()
    assign_gpus(args.gpus)
    set_threads(args.threads)

    options = TrainingOptions(**args.training)
    device = resolve_device(options.device)
    model_dir = reference_path(args.reference)
    # The weights and autocast of a one-process training job (compute_reference_logps runs under its autocast),
    # so that at step 0 the policy's log-probs equal these.
    model = load_causal_lm(model_dir, device, master_weights_precision(resolve_precision(options.precision, device)))
    tokenizer = load_tokenizer(model_dir)
    with tempfile.TemporaryDirectory() as scratch:
        states = FrozenStates.for_top_layers(model, options.trainable_layers) if args.states_output else None
        records = compute_reference_logps(model, tokenizer, read_jsonl(args.pairs), options, Path(scratch), states)
    write_jsonl(args.output, records)
    log.info("reference log-probs of %d pairs written to %s", len(records), args.output)
    if states is not None:
        states.save(args.states_output)
        log.info("frozen states: %s", f"{len(states.by_sequence)} sequences entering layer {states.layer} of "
                 f"{states.layers}, {states.bytes / 2**20:.1f} MB" if states.by_sequence else f"none ({states.skipped})")


if __name__ == "__main__":
    main()
