"""Benchmark: what one candidate costs (train + evaluate jobs of the default task) and what detectable difference a
budget buys, for several settings measured side by side in one session.

    python benchmarks/bench_candidate.py [--settings old new] [--seeds 3] [--workdir DIR] [--threads 1]

For each setting (``SETTINGS``: the task and training options that decide a candidate's cost) it builds the
preference data and reference log-probs as the run's shared stages do, then trains and scores the control (DPO) at
``--seeds`` training seeds, timing each phase of the two jobs the way their entry points run them (prefdisco.stages.train,
prefdisco.stages.evaluate): fixed costs (interpreter start and imports, measured in a fresh subprocess; model and tokenizer
loads; trainer set-up with the dataset's tokenisation; policy save) against compute (optimizer steps; sampling;
reward; KL log-probs). Wall and CPU seconds are printed side by side: on a shared machine CPU seconds of these
one-thread jobs are what a quiet machine's wall time would be, the wall seconds are what this session saw.

From the control's seeds x prompts fitness matrix it prints the variance components and the minimum detectable
difference to the control at ``fitness.seeds`` seeds (80% power, 5% level), by the formula the verdict uses
(prefdisco.stages.cascade.planned_detectable_difference), beside DPO's own gain over the reference (the signal the
difference is a fraction of). Last, a projection of the default run's total from the measured per-job costs and its
job counts (every candidate promoted: the worst case). Settings alternate seed by seed so drift in load hits each; each trains its own seeds (see main).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from bench_workflow import cpu_model  # the one CPU-model line every benchmark prints beside its times

REPO = Path(__file__).resolve().parents[1]

# The settings before this round (the default of issue 12's first round) and the candidates for the default.
# Only what decides a candidate's cost and noise differs; every other option is config.yaml's.
SETTINGS = {
    "old": {"task": {"train_prompts": 128, "heldout_prompts": 64, "samples_per_prompt": 3, "max_new_tokens": 16,
                     "eval_samples_per_prompt": 1, "batch_size": 32},
            "training": {"batch_size": 8, "learning_rate": 5.0e-4, "trainable_layers": 4}},
    # the default (config.yaml): more held-out prompts at half the tokens (evaluation noise is most of the noise,
    # and a completion's first 8 tokens carry most of its sentiment), fewer training pairs
    "new": {"task": {"train_prompts": 96, "heldout_prompts": 288, "samples_per_prompt": 3, "max_new_tokens": 8,
                     "eval_samples_per_prompt": 1, "batch_size": 96},
            "training": {"batch_size": 8, "learning_rate": 5.0e-4, "trainable_layers": 4}},
    # and half the training pairs at twice the learning rate: fewer, larger steps
    "lean": {"task": {"train_prompts": 64, "heldout_prompts": 288, "samples_per_prompt": 3, "max_new_tokens": 8,
                      "eval_samples_per_prompt": 1, "batch_size": 96},
             "training": {"batch_size": 8, "learning_rate": 1.0e-3, "trainable_layers": 4}},
}


class Clock:
    """Wall and CPU seconds per named phase."""

    def __init__(self) -> None:
        self.phases: dict[str, list[tuple[float, float]]] = {}

    @contextmanager
    def __call__(self, name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.add(name, time.perf_counter() - wall, time.process_time() - cpu)

    def add(self, name: str, wall: float, cpu: float) -> None:
        self.phases.setdefault(name, []).append((wall, cpu))
        # As it goes, so that a run cut short (a loaded machine) still says where the time went.
        print(f"  {name}: {wall:.1f} s wall, {cpu:.1f} s CPU, load {os.getloadavg()[0]:.1f}", flush=True)

    def mean(self, name: str) -> tuple[float, float]:
        values = self.phases.get(name, [])
        if not values:
            return math.nan, math.nan
        return sum(v[0] for v in values) / len(values), sum(v[1] for v in values) / len(values)


def import_cost(module: str, threads: int) -> tuple[float, float]:
    """(wall, CPU) seconds of a fresh `python -c 'import <module>'`: what every job pays before its first line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - started, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def options_of(setting: dict) -> tuple[dict, dict]:
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    task = {**config["task"]["options"], **setting["task"]}
    training = {**config["training"], **setting["training"]}
    training.pop("device", None), training.pop("precision", None)
    return task, training


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", type=int, default=3, help="control (DPO) training seeds per setting")
    parser.add_argument("--workdir", type=Path, default=None, help="keeps the converted reference between runs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (config threads.train/evaluate: 1; "
                        "more gets a loaded machine's benchmark more of its CPU, CPU seconds then count every thread)")
    args = parser.parse_args()

    import torch
    import yaml

    from prefdisco.stages.cascade import planned_detectable_difference
    from prefdisco.stages.evaluate import fitness
    from prefdisco.models import (
        load_causal_lm,
        load_for_inference,
        load_tokenizer,
        set_threads,
    )
    from prefdisco.objectives import library_source
    from prefdisco.trained_policy import save_policy
    from prefdisco.stages.preferences import build_preferences
    from prefdisco.stages.reference import provide_reference
    from prefdisco.sandbox.worker import ObjectiveWorker
    from prefdisco.shared_layers import FrozenStates
    from prefdisco.tasks import get_task
    from prefdisco.trainer import (
        ObjectiveDPOTrainer,
        TrainingOptions,
        attach_reference_logps,
        compute_reference_logps,
        dpo_config,
        freeze_below_top_layers,
        trainable_parameter_names,
    )

    set_threads(args.threads)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    seeds_planned = config["fitness"]["seeds"]
    kl_penalty = config["fitness"]["kl_penalty"]
    print(f"candidate benchmark on {cpu_model()}, torch threads {args.threads}, load average at start "
          f"{os.getloadavg()[0]:.1f}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="prefdisco-bench-candidate-"))
    reference_dir = workdir / "reference" / "model"
    if not (reference_dir / "config.json").exists():
        provide_reference("smollm2", workdir / "reference")
    task = get_task("sentiment")
    code = library_source("dpo")  # served by the confined worker, as in a real train job

    # Each setting builds its own data (the length of completions decides what a training step costs) and trains its
    # own seeds; settings alternate seed by seed, so drift in the machine's load hits each of them.
    clocks = {name: Clock() for name in args.settings}
    evaluations: dict[str, dict[int, dict]] = {name: {} for name in args.settings}
    data = {}
    for name in args.settings:
        clock = clocks[name]
        task_options, training = options_of(SETTINGS[name])
        with clock("once: preferences"):
            pairs, heldout, _ = build_preferences("sentiment", task_options, reference_dir, 0,
                                                  training["max_length"], "cpu", "fp32")
        with clock("once: reference_logps"):
            model = load_causal_lm(reference_dir, torch.device("cpu"))
            states = FrozenStates.for_top_layers(model, training["trainable_layers"])  # as the stage records them
            logps = compute_reference_logps(model, load_tokenizer(reference_dir), pairs,
                                            TrainingOptions(**training), Path(tempfile.mkdtemp(dir=workdir)), states)
        with clock("once: evaluate_reference"):
            reference = load_for_inference(reference_dir, "cpu", "fp32")
            reference_metrics = task.score(reference, None, load_tokenizer(reference_dir), heldout,
                                           task.to_options(task_options), 0)
        data[name] = {"pairs": pairs, "logps": logps, "states": states, "heldout": heldout, "task": task_options,
                      "training": training, "reference_reward": reference_metrics["reward"]}
        print(f"{name}: {len(pairs)} pairs, {len(heldout)} held-out prompts, reference reward "
              f"{reference_metrics['reward']:.4f}", flush=True)
        clock.add("fixed: start + imports (train)", *import_cost("prefdisco.stages.train", args.threads))
        clock.add("fixed: start + imports (evaluate)", *import_cost("prefdisco.stages.evaluate", args.threads))

    for seed in range(args.seeds):
        for name in args.settings:
            clock, d = clocks[name], data[name]
            options = TrainingOptions(**{**d["training"], "seed": seed})
            policy_dir = workdir / name / f"seed{seed}" / "policy"
            with clock("fixed: model load (train)"):
                model = load_causal_lm(reference_dir, torch.device("cpu"))
                names = trainable_parameter_names(model, options.trainable_layers)
            with clock("fixed: tokenizer load"):
                tokenizer = load_tokenizer(reference_dir)
            with clock("fixed: trainer set-up + tokenisation + worker start"):
                objective = ObjectiveWorker(code).__enter__()
                dataset = attach_reference_logps(d["pairs"], d["logps"])
                freeze_below_top_layers(model, options.trainable_layers)
                tokenizer.padding_side = "right"
                scratch = Path(tempfile.mkdtemp(dir=workdir))
                trainer = ObjectiveDPOTrainer(model=model, args=dpo_config(options, scratch), train_dataset=dataset,
                                              processing_class=tokenizer, objective=objective,
                                              frozen_states=d["states"] if d["states"].by_sequence else None)
            with clock("compute: training steps"):
                trainer.train()
            objective.close()
            steps = trainer.state.global_step
            with clock("fixed: policy save"):
                save_policy(trainer, reference_dir, policy_dir, names)
            del trainer, model
            with clock("fixed: model loads (evaluate)"):
                tokenizer = load_tokenizer(reference_dir)
                reference = load_for_inference(reference_dir, "cpu", "fp32")
                policy = load_for_inference(reference_dir, "cpu", "fp32", policy_dir, reference=reference)
            with clock("compute: evaluate (sample, reward, KL)"):
                metrics = task.score(policy, reference, tokenizer, d["heldout"], task.to_options(d["task"]), 0)
            evaluations[name][seed] = {"status": "ok", "metrics": metrics}
            print(f"{name} seed {seed}: {steps} steps, reward {metrics['reward']:.4f}, KL {metrics['kl']:.3f}, "
                  f"fitness {fitness(metrics, kl_penalty):.4f}; load {os.getloadavg()[0]:.1f}", flush=True)
            del policy, reference

    report(args.settings, clocks, data, evaluations, seeds_planned, kl_penalty, config, planned_detectable_difference)
    return 0


def per_candidate(clock: Clock) -> tuple[float, float]:
    """(wall, CPU) seconds of one train job plus one evaluate job."""
    names = [n for n in clock.phases if not n.startswith("once")]
    return sum(clock.mean(n)[0] for n in names), sum(clock.mean(n)[1] for n in names)


def default_run_jobs(config: dict) -> dict:
    """Train+evaluate units of the default run, every non-control candidate promoted (the worst case)."""
    discovery, fitness_config = config["discovery"], config["fitness"]
    seed_objectives = len(discovery["seed_objectives"])
    candidates = seed_objectives + discovery["generations"] * discovery["population"]
    promotable = candidates - (1 if fitness_config["control"] in discovery["seed_objectives"] else 0)
    units = candidates + (fitness_config["control_seeds"] - 1) + promotable * (fitness_config["seeds"] - 1)
    return {"one_seed": candidates, "control_extra": fitness_config["control_seeds"] - 1,
            "replicas": promotable * (fitness_config["seeds"] - 1), "units": units}


def report(settings, clocks, data, evaluations, seeds_planned, kl_penalty, config, planned) -> None:
    phases = []
    for clock in clocks.values():
        phases += [p for p in clock.phases if p not in phases]
    width = max(len(p) for p in phases) + 2
    print(f"\nper-phase seconds, mean per job (wall / CPU); load average now {os.getloadavg()[0]:.1f}")
    print(f"{'phase':<{width}}" + "".join(f"{name:>20}" for name in settings)
          + (f"{'ratio CPU':>11}" if len(settings) == 2 else ""))
    for phase in phases:
        cells = [clocks[n].mean(phase) for n in settings]
        line = f"{phase:<{width}}" + "".join(f"{w:>10.1f} / {c:>6.1f}" for w, c in cells)
        if len(settings) == 2 and cells[0][1]:
            line += f"{cells[1][1] / cells[0][1]:>11.2f}"
        print(line)
    totals = [per_candidate(clocks[n]) for n in settings]
    print(f"{'one candidate (train + evaluate)':<{width}}" + "".join(f"{w:>10.1f} / {c:>6.1f}" for w, c in totals)
          + (f"{totals[1][1] / totals[0][1]:>11.2f}" if len(settings) == 2 else ""))
    fixed = [sum(clocks[n].mean(p)[1] for p in clocks[n].phases if p.startswith("fixed")) for n in settings]
    print(f"{'  of which fixed (CPU)':<{width}}" + "".join(f"{f:>19.1f}" + " " for f in fixed))

    jobs = default_run_jobs(config)
    print(f"\nthe default run's train+evaluate units, every candidate promoted: {jobs['one_seed']} one-seed + "
          f"{jobs['control_extra']} control seeds + {jobs['replicas']} replicas = {jobs['units']}")
    print(f"{'setting':<8}{'pairs':>7}{'prompts':>9}{'units x CPU s / 2 cores':>26}{'+ once (CPU s)':>16}"
          f"{'seed SD':>9}{'resid SD':>10}{'MDD':>8}{'DPO gain':>10}")
    for name, (wall, cpu) in zip(settings, totals):
        once = sum(clocks[name].mean(p)[1] for p in clocks[name].phases if p.startswith("once"))
        control = evaluations[name]
        planned_mdd = planned(control, kl_penalty, seeds_planned) if len(control) > 1 else None
        gain = (sum(e["metrics"]["reward"] for e in control.values()) / len(control) - data[name]["reference_reward"])
        mdd = (f"{planned_mdd['seed_sd']:>9.4f}{planned_mdd['residual_sd']:>10.4f}{planned_mdd['value']:>8.4f}"
               if planned_mdd else f"{'-':>9}{'-':>10}{'-':>8}")
        print(f"{name:<8}{len(data[name]['pairs']):>7}{len(data[name]['heldout']):>9}"
              f"{jobs['units'] * cpu / 2:>26.0f}{once:>16.0f}{mdd}{gain:>+10.4f}")
    print(f"MDD: fitness difference to the control detectable at {seeds_planned} seeds (80% power, 5% level, "
          f"two-sided), from the control's {len(next(iter(evaluations.values())))} seeds x prompts; DPO gain: its "
          f"mean held-out reward over the reference's, the signal a difference is a fraction of. The run's total is "
          f"about units x CPU s / 2 cores + the once-per-run stages + reference conversion, proposals and "
          f"validation (not measured here).")
    for name in settings:
        print(f"{name}: task {json.dumps(SETTINGS[name]['task'])}, training {json.dumps(SETTINGS[name]['training'])}")


if __name__ == "__main__":
    sys.exit(main())
