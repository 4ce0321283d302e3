"""Benchmark: what a top-layers policy saves by not running its frozen bottom layers, side by side in one run.

    python benchmarks/bench_top_layers.py [--prompts 128] [--tokens 8] [--steps 6] [--workdir DIR]

On the default model (SmolLM2-135M, ``training.trainable_layers: 4`` of 30), with the default task's prompts:

* evaluation's KL: before, a whole forward pass of the policy and one of the reference over the policy's samples;
  now, the policy's log-probs read from the logits the samples were drawn from and the reference's from its top 4
  layers on the hidden states kept while sampling. Sampling itself is timed too: it is the same in both.
* training steps: before, every step a whole forward pass; now, from the states the reference_logps stage records
  once (shared_layers.FrozenStates).

Each pair of timings runs on the same data in the same process, alternating, and each prints the largest difference
between the two results (they must agree to float32 precision). CPU seconds are those of this one-thread process.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

from bench_workflow import cpu_model


def cpu_seconds(function):
    started = time.process_time()
    result = function()
    return time.process_time() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=128, help="held-out prompts, one sample each")
    parser.add_argument("--tokens", type=int, default=8, help="tokens per sample")
    parser.add_argument("--pairs", type=int, default=64, help="training pairs")
    parser.add_argument("--steps", type=int, default=6, help="training steps timed, batch 8")
    parser.add_argument("--workdir", type=Path, default=None, help="keeps the converted reference between runs")
    args = parser.parse_args()

    import torch

    from prefdisco.models import load_causal_lm, load_for_inference, load_tokenizer, set_threads
    from prefdisco.objectives import library_source
    from prefdisco.stages.preferences import build_preferences
    from prefdisco.stages.reference import provide_reference
    from prefdisco.sampling import sample_completions, sampled_kl
    from prefdisco.sandbox.worker import ObjectiveWorker
    from prefdisco.shared_layers import FrozenStates, shared_bottom_layers
    from prefdisco.trainer import TrainingOptions, attach_reference_logps, compute_reference_logps, train_objective

    set_threads(1)
    print(f"top-layers benchmark on {cpu_model()}, torch threads 1, load average {os.getloadavg()[0]:.1f}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="prefdisco-bench-top-"))
    model_dir = workdir / "reference" / "model"
    if not (model_dir / "config.json").exists():
        provide_reference("smollm2", workdir / "reference")
    tokenizer = load_tokenizer(model_dir)
    task = {"train_prompts": args.pairs * 2, "heldout_prompts": args.prompts, "samples_per_prompt": 3,
            "max_new_tokens": args.tokens, "batch_size": 64}
    pairs, heldout, _ = build_preferences("sentiment", task, model_dir, 0, 128, "cpu", "fp32")
    pairs = pairs[: args.pairs]

    # Evaluation: a policy whose top 4 layers differ from the reference's, as training leaves them.
    reference = load_for_inference(model_dir, "cpu", "fp32")
    policy = copy.deepcopy(reference)
    for name, parameter in policy.named_parameters():
        if name.startswith(tuple(f"model.layers.{i}." for i in range(26, 30))):
            parameter.data = parameter.data + 0.01 * torch.randn_like(parameter)
    shared = shared_bottom_layers(policy, reference)
    sample_s, completions = cpu_seconds(lambda: sample_completions(
        policy, tokenizer, heldout, 1, args.tokens, seed=0, batch_size=64, keep_hidden_at=shared))
    new_s, new_kl = cpu_seconds(lambda: sampled_kl(policy, reference, tokenizer, completions, 64))
    kept = [(c.logp, c.hidden) for c in completions]
    for c in completions:
        c.logp, c.hidden = None, None
    old_s, old_kl = cpu_seconds(lambda: sampled_kl(policy, reference, tokenizer, completions, 64))
    for c, (logp, hidden) in zip(completions, kept):
        c.logp, c.hidden = logp, hidden
    agree = max(abs(a - b) for a, b in zip(new_kl, old_kl))
    print(f"\nevaluation of {len(completions)} samples x {args.tokens} tokens (shared bottom layers: {shared} of 30)")
    print(f"  sampling (same either way)                      {sample_s:7.1f} s CPU")
    print(f"  KL before: policy + reference whole passes      {old_s:7.1f} s CPU")
    print(f"  KL now: sampling logits + reference top layers  {new_s:7.1f} s CPU   {old_s / new_s:5.1f}x less")
    print(f"  evaluation total (sampling + KL)                {sample_s + old_s:7.1f} -> {sample_s + new_s:.1f} s CPU"
          f"   {(sample_s + old_s) / (sample_s + new_s):5.2f}x;  largest KL difference {agree:.2e} nats")

    # Training: the same steps with and without the recorded states.
    options = TrainingOptions(beta=0.1, learning_rate=5e-4, batch_size=8, max_steps=args.steps, seed=0, device="cpu",
                              precision="fp32", max_length=128, warmup_steps=0, lr_scheduler="constant",
                              trainable_layers=30 - shared)
    states = FrozenStates.for_top_layers(reference, options.trainable_layers)
    logps = compute_reference_logps(load_causal_lm(model_dir, torch.device("cpu")), tokenizer, pairs, options,
                                    Path(tempfile.mkdtemp(dir=workdir)), states)
    dataset = attach_reference_logps(pairs, logps)
    times, losses = {}, {}
    for label, store in (("before: whole forward passes", None), ("now: from the frozen states", states)):
        model = load_causal_lm(model_dir, torch.device("cpu"))
        with ObjectiveWorker(library_source("dpo")) as worker:
            seconds, (_, history) = cpu_seconds(lambda: train_objective(
                model, load_tokenizer(model_dir), dataset, worker, options, Path(tempfile.mkdtemp(dir=workdir)), store))
        times[label], losses[label] = seconds, [h["loss"] for h in history if "loss" in h]
    before, now = times.values()
    agree = max(abs(a - b) for a, b in zip(*losses.values()))
    print(f"\ntraining: {args.steps} steps of 8 pairs ({len(states.by_sequence)} sequences recorded, "
          f"{states.bytes / 2**20:.1f} MB)")
    for label, seconds in times.items():
        print(f"  {label:<44}{seconds:7.1f} s CPU")
    print(f"  ratio {before / now:.2f}x;  largest difference in the logged losses {agree:.2e}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
