# Helpers and input functions; the config is validated here, before any job runs.
import json
import re
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../src/prefdisco/schemas/config.schema.yaml")

RUN = config["run"]
GENERATIONS = config["discovery"]["generations"]
FAMILY = config.get("family", "preference")  # the objective family (src/prefdisco/families)


wildcard_constraints:
    run=r"[A-Za-z0-9_.-]+",
    g=r"\d+",
    k=r"\d+",
    unit=r"gen\d+/cand\d+|experiments/[A-Za-z0-9_-]+/[a-z]+/beta[0-9.e-]+/seed\d+|transfer/[a-z0-9]+/[A-Za-z0-9_-]+/seed\d+",


def as_json(value):
    """A config section as compact JSON: one shell argument once quoted with {params.name:q}."""
    return json.dumps(value, separators=(",", ":"))


def beta_argument():
    """The run's beta for validation: preference objectives have one, classification objectives none."""
    return f"--beta {config['training']['beta']}" if FAMILY == "preference" else ""


def training_options():
    return as_json({**config["training"], "seed": config["seed"]})


def task_options():
    return as_json(config["task"]["options"])


def accelerate_config():
    """The accelerate config a job with several GPUs launches with (config `training.distributed`)."""
    strategy = config["training"].get("distributed", "deepspeed_zero3")
    return str(Path(workflow.basedir) / "configs" / "accelerate" / f"{strategy}.yaml")


def threads_for(rule_name):
    return config["threads"].get(rule_name, 1)


def resource(rule_name, key, default=None):
    """A scheduler resource of a rule, from config `resources.<rule>.<key>`; None leaves it to the profile."""
    return config["resources"].get(rule_name, {}).get(key, default)


def scaled_resource(rule_name, key, default):
    """Memory and time grow with each retry (--retries), so a job killed for either gets more next time."""
    return lambda wildcards, attempt: resource(rule_name, key, default) * attempt


def run_locally(rule_name):
    """True for the steps that config `local_rules` keeps local. Snakemake runs those itself instead of
    submitting them, so on a cluster the login node does the network-bound work compute nodes often cannot."""
    return rule_name in config["local_rules"]


def previous_archive(wildcards):
    g = int(wildcards.g)
    return [] if g == 0 else f"results/{wildcards.run}/gen{g - 1}/archive.jsonl"


def trained_candidates(wildcards):
    """Candidates of generation g that validation passed on to training: valid and not a duplicate."""
    with open(checkpoints.validate.get(**wildcards).output[0]) as handle:
        verdicts = json.load(handle)
    return [v["id"].split("-k")[1] for v in verdicts if v["valid"] and not v.get("duplicate_of")]


def generation_trainings(wildcards):
    return expand("results/{run}/gen{g}/cand{k}/train.json", run=wildcards.run, g=wildcards.g,
                  k=trained_candidates(wildcards))


def generation_evaluations(wildcards):
    return expand("results/{run}/gen{g}/cand{k}/eval.json", run=wildcards.run, g=wildcards.g,
                  k=trained_candidates(wildcards))


def experiment_units(run):
    units = []
    for name, grid in config.get("experiments", {}).items():
        for objective in grid["objectives"]:
            for beta in grid["betas"]:
                for seed in grid["seeds"]:
                    units.append(f"experiments/{name}/{objective}/beta{beta}/seed{seed}")
    return units


def experiment_evaluations(wildcards):
    return [f"results/{wildcards.run}/{unit}/eval.json" for unit in experiment_units(wildcards.run)]


def experiment_targets():
    return [f"results/{RUN}/experiments.csv"] if config.get("experiments") else []


def all_targets():
    final = f"results/{RUN}"
    if FAMILY == "classification":
        return classification_targets()
    return [
        f"{final}/gen{GENERATIONS}/archive.jsonl",
        f"{final}/summary.csv",
        f"{final}/summary.md",
        f"{final}/figures/fitness_over_generations.png",
        f"{final}/figures/objective_shapes.png",
        f"{final}/figures/reward_vs_kl.png",
    ] + judging_targets()


# --- judged benchmarks: MT-Bench as the fitness, AlpacaEval 2.0 held out (rules/judging.smk) ----------------------

BENCHMARKS = config.get("benchmarks", {})
MT_BENCH = BENCHMARKS.get("mt_bench", {})
ALPACA_EVAL = BENCHMARKS.get("alpaca_eval", {})
MT_BENCH_FITNESS = config.get("fitness", {}).get("benchmark", "task") == "mt_bench"
ALPACA_EVAL_HELD_OUT = ALPACA_EVAL.get("held_out", False)
JUDGE_CACHE = config["llm_cache"]  # the proposer's too: one content-addressed cache of LLM replies
# what a benchmark answers: the reference itself, a discovery candidate or a fixed experiment
JUDGED_MODEL = r"reference|gen\d+/cand\d+|experiments/[A-Za-z0-9_-]+/[a-z]+/beta[0-9.e-]+/seed\d+"
BENCHMARK_FILES = {
    "mt_bench": ["question.jsonl", "judge_prompts.jsonl", "reference_answer/gpt-4.jsonl"],
    "alpaca_eval": ["alpaca_eval_gpt4_baseline.json", "df_gamed.csv"],
}


def judging_targets():
    final = f"results/{RUN}"
    targets = [f"{final}/figures/mt_bench_radar.png"] if MT_BENCH_FITNESS else []
    if ALPACA_EVAL_HELD_OUT:
        targets += [f"{final}/alpaca_eval/table2.csv", f"{final}/alpaca_eval/table2.md",
                    f"{final}/figures/alpaca_eval_lc_win_rate.png"]
    return targets


def judged_scores(wildcards):
    """The MT-Bench scores that make a unit's reward, when MT-Bench is the fitness."""
    unit = getattr(wildcards, "unit", "reference")
    return [f"results/{wildcards.run}/{unit}/mt_bench/scores.json"] if MT_BENCH_FITNESS else []


def benchmark_data(name):
    """Files of a benchmark's data folder in the run."""
    return [f"results/{{run}}/data/{name}/{f}" for f in BENCHMARK_FILES[name]]


def benchmark_source(name):
    """Where a benchmark's data comes from: local copies, a mirror, or (nothing) the pinned sources."""
    section = BENCHMARKS.get(name, {})
    if section.get("data_dir"):
        return f"--local-dir {section['data_dir']}"
    return f"--mirror {section['mirror']}" if section.get("mirror") else ""


def benchmark_local_files(name):
    data_dir = BENCHMARKS.get(name, {}).get("data_dir")
    return [f"{data_dir}/{f}" for f in BENCHMARK_FILES[name]] if data_dir else []


def answering_model(wildcards):
    """The model that answers: the reference, or a trained unit (its policy and training record)."""
    inputs = {"reference": f"results/{wildcards.run}/reference/reference.json"}
    if wildcards.model != "reference":
        inputs["policy"] = f"results/{wildcards.run}/{wildcards.model}/policy"
        inputs["train_record"] = f"results/{wildcards.run}/{wildcards.model}/train.json"
    return inputs


def policy_arguments(wildcards, input):
    return f"--policy-dir {input.policy} --train-record {input.train_record}" if "policy" in input.keys() else ""


def judged_model_id(wildcards):
    """The name a model's answers are filed under: its path with the separators turned into dashes."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", wildcards.model)


def alpaca_eval_selection(run):
    with open(checkpoints.alpaca_eval_selection.get(run=run).output[0]) as handle:
        return json.load(handle)


def alpaca_eval_metrics(wildcards):
    """AlpacaEval results of every held-out objective against every configured reference."""
    return [f"results/{wildcards.run}/{entry['unit']}/alpaca_eval/{reference}/metrics.json"
            for entry in alpaca_eval_selection(wildcards.run)
            for reference in ALPACA_EVAL.get("references", ["gpt4_turbo"])]


def alpaca_eval_reference_outputs(wildcards):
    """The SFT reference's outputs, when a model is compared with them."""
    return [f"results/{wildcards.run}/reference/alpaca_eval/model_outputs.json"] if wildcards.reference == "sft" else []


# --- the classification family (rules/classification.smk) ------------------------------------------------------------

CLASSIFICATION = config.get("classification", {})
TRANSFER = CLASSIFICATION.get("transfer", {})


def classification_targets():
    """The final archive, the transfer table and Fig. 2 (left and right)."""
    final = f"results/{RUN}"
    return [f"{final}/gen{GENERATIONS}/archive.jsonl", f"{final}/transfer.csv",
            f"{final}/figures/fig2_left.png", f"{final}/figures/fig2_right.png"]


def classification_data_source():
    """Where CIFAR-10 is read from (or downloaded to); digits need nothing."""
    if CLASSIFICATION.get("dataset") != "cifar10":
        return ""
    root = CLASSIFICATION.get("data_dir") or "data/cifar10"
    url = f" --url {CLASSIFICATION['url']}" if CLASSIFICATION.get("url") else ""
    md5 = f" --md5 {CLASSIFICATION['md5']}" if CLASSIFICATION.get("md5") else ""
    return f"--root {root}{url}{md5}"


def transfer_evaluations(wildcards):
    """Every transfer unit's eval.json: the selection (a checkpoint) x transfer models x seeds."""
    with open(checkpoints.transfer_selection.get(run=wildcards.run).output[0]) as handle:
        keys = [entry["key"] for entry in json.load(handle)]
    return [f"results/{wildcards.run}/transfer/{model}/{key}/seed{seed}/eval.json"
            for model in TRANSFER["models"] for key in keys for seed in TRANSFER["seeds"]]
