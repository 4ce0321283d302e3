# Helpers and input functions; the config is validated here, before any job runs.
import json
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../src/prefdisco/schemas/config.schema.yaml")

RUN = config["run"]
GENERATIONS = config["discovery"]["generations"]


wildcard_constraints:
    run=r"[A-Za-z0-9_.-]+",
    g=r"\d+",
    k=r"\d+",
    unit=r"gen\d+/cand\d+|experiments/[A-Za-z0-9_-]+/[a-z]+/beta[0-9.e-]+/seed\d+",


def as_json(value):
    """A config section as compact JSON: one shell argument once quoted with {params.name:q}."""
    return json.dumps(value, separators=(",", ":"))


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
    return [
        f"{final}/gen{GENERATIONS}/archive.jsonl",
        f"{final}/summary.csv",
        f"{final}/summary.md",
        f"{final}/figures/fitness_over_generations.png",
        f"{final}/figures/objective_shapes.png",
        f"{final}/figures/reward_vs_kl.png",
    ]
