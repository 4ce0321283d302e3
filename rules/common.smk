# Helpers and input functions; the config is validated here, before any job runs.
import json
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The stage contracts (ids, statuses, which candidates are trained) and the config checks from the workflow's own
# package, the same definitions its jobs use.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from prefdisco.config_checks import config_errors
from prefdisco.records import (
    UNIT_PATTERN,
    candidate_id,
    experiment_unit,
    experiment_unit_id,
    goes_to_training,
    parse_candidate_id,
)


# set_default: the schema is the only source of defaults; nothing below falls back to a default of its own.
validate(config, schema="../src/prefdisco/schemas/config.schema.yaml", set_default=True)
# What the schema cannot say (files the config names exist, trainable_layers fits the model), before any job runs.
if config_problems := config_errors(config):
    raise WorkflowError("invalid config:\n" + "\n".join(config_problems))

RUN = config["run"]
GENERATIONS = config["discovery"]["generations"]
FAMILY = config["family"]  # the objective family (src/prefdisco/families)


# The search baselines of a run (rules/baselines.smk): each is a search of its own under
# results/<run>/baselines/<name>/, sharing the run's reference, data, reference log-probs, control and generation 0.
BASELINES = ("random", "best_of_n")


wildcard_constraints:
    run=rf"[A-Za-z0-9_.-]+(?:/baselines/(?:{'|'.join(BASELINES)}))?",
    g=r"\d+",
    k=r"\d+",
    seed=r"\d+",
    unit=UNIT_PATTERN,


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


def threads_for(rule_name):
    return config["threads"][rule_name]


def resource(rule_name, key):
    """A scheduler resource of a rule, from config `resources.<rule>.<key>`; None leaves it to the profile."""
    return config["resources"][rule_name][key]


def scaled_resource(rule_name, key):
    """Memory and time grow with each retry (--retries), so a job killed for either gets more next time."""
    return lambda wildcards, attempt: resource(rule_name, key) * attempt


def run_locally(rule_name):
    """True for the steps that config `local_rules` keeps local. Snakemake runs those itself instead of
    submitting them, so on a cluster the login node does the network-bound work compute nodes often cannot."""
    return rule_name in config["local_rules"]


BASELINE_SEARCH = re.compile(r"(?P<home>.+?)/baselines/(?P<baseline>\w+)")


def home_run(run):
    """The discovery run a search belongs to: itself, or the run a baseline search was started beside."""
    match = BASELINE_SEARCH.fullmatch(run)
    return match.group("home") if match else run


def baseline_of(run):
    """The baseline a search is (random, best_of_n), or None for the discovery run itself."""
    match = BASELINE_SEARCH.fullmatch(run)
    return match.group("baseline") if match else None


def shared(path):
    """An input every search of a run shares (reference, data, reference log-probs): computed once, in the run."""
    return lambda wildcards: f"results/{home_run(wildcards.run)}/{path}"


def generation_run(run, g):
    """Whose generation g a search uses: every search starts from the run's own generation 0 (the seed archive)."""
    return home_run(run) if int(g) == 0 else run


def previous_archive(wildcards):
    g = int(wildcards.g)
    return [] if g == 0 else f"results/{generation_run(wildcards.run, g - 1)}/gen{g - 1}/archive.jsonl"


def proposal_archive(wildcards):
    """What the proposer reads: the previous archive; "sample N, keep the best" only ever sees generation 0."""
    if baseline_of(wildcards.run) == "best_of_n" and int(wildcards.g) > 0:
        return f"results/{home_run(wildcards.run)}/gen0/archive.jsonl"
    return previous_archive(wildcards)


def proposer_backend(wildcards):
    """Random search draws from the evolution backend's expression space; every other search uses the run's."""
    return "random" if baseline_of(wildcards.run) == "random" else config["discovery"]["proposer"]["backend"]


def proposer_options(wildcards):
    """The backend's options; random search takes the evolution options (depth, tries) when the run has them."""
    proposer = config["discovery"]["proposer"]
    if baseline_of(wildcards.run) == "random" and proposer["backend"] != "evolution":
        return as_json({})
    return as_json(proposer["options"])


def trained_candidates(wildcards):
    """Candidates of generation g that validation passed on to training: valid and not a duplicate."""
    with open(checkpoints.validate.get(**wildcards).output[0]) as handle:
        verdicts = json.load(handle)
    return [parse_candidate_id(v["id"])[1] for v in verdicts if goes_to_training(v)]


def generation_trainings(wildcards):
    return expand("results/{run}/gen{g}/cand{k}/train.json", run=wildcards.run, g=wildcards.g,
                  k=trained_candidates(wildcards))


def generation_evaluations(wildcards):
    return expand("results/{run}/gen{g}/cand{k}/eval.json", run=wildcards.run, g=wildcards.g,
                  k=trained_candidates(wildcards))


def experiment_units(run):
    units = []
    for name, grid in config["experiments"].items():
        for objective in grid["objectives"]:
            for beta in grid["betas"]:
                for seed in grid["seeds"]:
                    units.append(experiment_unit(experiment_unit_id(name, objective, beta, seed)))
    return units


def experiment_evaluations(wildcards):
    return [f"results/{wildcards.run}/{unit}/eval.json" for unit in experiment_units(wildcards.run)]


def experiment_targets():
    return [f"results/{RUN}/experiments.csv"] if config["experiments"] else []


def all_targets():
    final = f"results/{RUN}"
    if FAMILY == "classification":
        return classification_targets()
    return [
        f"{final}/gen{GENERATIONS}/archive.jsonl",
        f"{final}/summary.csv",
        f"{final}/summary.md",
        f"{final}/config.yaml",
        f"{final}/figures/fitness_over_generations.png",
        f"{final}/figures/objective_shapes.png",
        f"{final}/figures/reward_vs_kl.png",
    ] + judging_targets()


# --- judged benchmarks: MT-Bench as the fitness, AlpacaEval 2.0 held out (rules/judging.smk) ----------------------

BENCHMARKS = config["benchmarks"]
MT_BENCH = BENCHMARKS["mt_bench"]
ALPACA_EVAL = BENCHMARKS["alpaca_eval"]
MT_BENCH_FITNESS = FAMILY == "preference" and config["fitness"]["benchmark"] == "mt_bench"
ALPACA_EVAL_HELD_OUT = ALPACA_EVAL["held_out"]
JUDGE_CACHE = config["llm_cache"]  # the proposer's too: one content-addressed cache of LLM replies
# what a benchmark answers: the reference itself, a discovery candidate or a fixed experiment
JUDGED_MODEL = f"reference|{UNIT_PATTERN}"
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
    section = BENCHMARKS[name]
    if section["data_dir"]:
        return f"--local-dir {section['data_dir']}"
    return f"--mirror {section['mirror']}" if section["mirror"] else ""


def benchmark_local_files(name):
    data_dir = BENCHMARKS[name]["data_dir"]
    return [f"{data_dir}/{f}" for f in BENCHMARK_FILES[name]] if data_dir else []


def answering_model(wildcards):
    """The model that answers: the reference, or a trained unit (its policy and training record)."""
    inputs = {"reference": f"results/{home_run(wildcards.run)}/reference/reference.json"}
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
            for reference in ALPACA_EVAL["references"]]


def alpaca_eval_reference_outputs(wildcards):
    """The SFT reference's outputs, when a model is compared with them."""
    return [f"results/{wildcards.run}/reference/alpaca_eval/model_outputs.json"] if wildcards.reference == "sft" else []


# --- noise-aware fitness: the control, the cascade and the final archive (rules/cascade.smk) ------------------------

# Both families: the schema fills in each family's control (dpo; cross_entropy for classification).
FITNESS = config["fitness"]
CONTROL = FITNESS["control"]
SEEDS = FITNESS["seeds"]  # of a promoted candidate
CONTROL_SEEDS = FITNESS["control_seeds"]  # that the search's one-seed intervals borrow from
# the training seed of a candidate's first unit (a classification run's `seed` is its data split)
FIRST_SEED = config["seed"] if FAMILY == "preference" else config["classification"]["training"]["seed"]


def control_unit(run, s):
    """The control's unit at training seed FIRST_SEED + s. Its first seed is generation 0's own unit when the seed
    archive holds the control: the same objective, beta, seed and data order, so training it twice would only
    repeat the same numbers."""
    seeds = config["discovery"]["seed_objectives"]
    if s == 0 and CONTROL in seeds:
        return f"results/{home_run(run)}/gen0/cand{seeds.index(CONTROL)}"
    # a classification objective has no beta: its control unit is experiments/control/<objective>/seed<s>
    objective = f"{CONTROL}/beta{config['training']['beta']}" if FAMILY == "preference" else CONTROL
    return f"results/{home_run(run)}/experiments/control/{objective}/seed{FIRST_SEED + s}"


def control_arguments():
    """How the archive compares with the control."""
    return f"--control-name {CONTROL} --kl-penalty {config['fitness']['kl_penalty']} --first-seed {FIRST_SEED}"


def control_evaluations(count):
    """The control objective's units, one per training seed: trained once, shared by every generation."""
    return lambda wildcards: [f"{control_unit(wildcards.run, s)}/eval.json" for s in range(count)]


def promoted_candidates(run, g):
    with open(checkpoints.promote.get(run=run, g=g).output[0]) as handle:
        return [d["candidate"] for d in json.load(handle) if d["promoted"]]


def promotion_decisions(wildcards):
    return [f"results/{generation_run(wildcards.run, g)}/gen{g}/promotion.json" for g in range(GENERATIONS + 1)]


def replica_paths(search):
    """Seeds 2..n of every promoted candidate of a search: raising fitness.seeds adds only the new ones."""
    runs = [(g, generation_run(search, g)) for g in range(GENERATIONS + 1)]
    return [f"results/{run}/gen{g}/cand{k}/seed{FIRST_SEED + s}/eval.json"
            for g, run in runs for k in promoted_candidates(run, g) for s in range(1, SEEDS)]


def replica_evaluations(wildcards):
    return replica_paths(wildcards.run)


# --- search baselines at the discovery's budget (rules/baselines.smk) ------------------------------------------------


def baseline_runs(run):
    return [f"{run}/baselines/{name}" for name in BASELINES]


def baselines_targets():
    """The table comparing the discovery's best with each baseline's (preference family, one generation or more)."""
    if FAMILY != "preference" or GENERATIONS < 1:
        return []
    return [f"results/{RUN}/baselines.csv", f"results/{RUN}/baselines.md"]


def search_archives(wildcards):
    return [f"results/{run}/archive.jsonl" for run in [wildcards.run, *baseline_runs(wildcards.run)]]


def search_verdicts(wildcards):
    return [f"results/{run}/verdict.json" for run in [wildcards.run, *baseline_runs(wildcards.run)]]


def search_replicas(wildcards):
    """Every replica seed of every search (the discovery's and each baseline's): the best's seeds are among them."""
    return sorted({path for run in [wildcards.run, *baseline_runs(wildcards.run)]
                   for path in replica_paths(run)})


# --- the paper's figures and tables (rules/paper.smk) ------------------------------------------------------------

PAPER_FIG7_OBJECTIVES = ["dpo", "slic", "padll", "lrml"]


def paper_study():
    """(name, grid) of the run's first experiment: the study its paper artifacts draw."""
    experiments = config["experiments"]
    return next(iter(experiments.items()), (None, None))


def paper_units(objectives, beta=None):
    name, grid = paper_study()
    betas = grid["betas"] if beta is None else [beta]
    return [f"experiments/{name}/{o}/beta{b}/seed{s}" for o in grid["objectives"] if o in objectives
            for b in betas for s in grid["seeds"]]


def paper_beta():
    """The study's beta closest to the paper's 0.05 (Figs. 7 and 14)."""
    return min(paper_study()[1]["betas"], key=lambda b: abs(float(b) - 0.05))


def paper_artifacts(run=None):
    """Every paper artifact this config's run supports, as {path: what it is}."""
    run = run or RUN
    name, grid = paper_study()
    out = f"results/{run}/paper"
    artifacts = {}
    if grid is None:
        return artifacts
    has_reward = config["task"]["name"] in ("sentiment", "imdb") and not MT_BENCH_FITNESS
    if has_reward and len(grid["betas"]) > 1:
        if {"lrml", "dpo"} <= set(grid["objectives"]):
            artifacts[f"{out}/fig5_lrml_vs_dpo.png"] = "Fig. 5: reward vs KL, LRML and DPO"
        if {"lrml", "slic"} <= set(grid["objectives"]):
            artifacts[f"{out}/fig5_lrml_vs_slic.png"] = "Fig. 5: reward vs KL, LRML and SLiC"
        artifacts[f"{out}/fig8_frontiers.png"] = "Fig. 8: reward vs KL, every objective"
        artifacts[f"{out}/appendix_frontiers.png"] = "appendix: one reward-vs-KL panel per objective"
    if config["training"]["eval_pairs"] > 0 and set(PAPER_FIG7_OBJECTIVES) & set(grid["objectives"]):
        artifacts[f"{out}/fig7_training_curves.png"] = "Fig. 7: training and evaluation loss and reward accuracy"
    if "lrml" in grid["objectives"] and config["task"]["name"] != "tldr":
        artifacts[f"{out}/fig14_log_ratios.png"] = "Fig. 14: log-ratio differences under a trained LRML policy"
    if MT_BENCH_FITNESS:
        artifacts[f"{out}/table1.csv"] = "Table 1: MT-Bench per objective with SE"
    if config["task"]["name"] == "tldr":
        artifacts[f"{out}/tldr_table.csv"] = "TL;DR win rates vs the human summary and the SFT model"
    return artifacts


def paper_exports(run=None):
    """The benchmarks' own layouts this run has data for: MT-Bench (FastChat) and AlpacaEval (alpaca_eval)."""
    out = f"results/{run or RUN}/exports"
    exports = {}
    if MT_BENCH_FITNESS and (paper_study()[1] is not None or ALPACA_EVAL_HELD_OUT):
        exports[f"{out}/fastchat"] = "MT-Bench answers and judgments in FastChat's layout (show_result reads them)"
    if ALPACA_EVAL_HELD_OUT:
        exports[f"{out}/alpaca_eval"] = "AlpacaEval outputs and annotations in alpaca_eval's layout (its cache)"
    return exports


def _unique_names(pairs):
    """{name: unit}; a name used twice gets its unit's path appended, so every exported model is one unit."""
    names = [name for name, _ in pairs]
    return {(name if names.count(name) == 1 else f"{name}-{'-'.join(Path(unit).parts)}"): unit for name, unit in pairs}


def alpaca_eval_export_units(wildcards):
    """The held-out objectives, one exported model each, named by library name (a discovered one by its id)."""
    return _unique_names([(entry["library_name"] or entry["id"], entry["unit"])
                          for entry in alpaca_eval_selection(wildcards.run)])


def exported_units(wildcards):
    """The MT-Bench models FastChat gets: the paper study's units (Table 1), else the AlpacaEval selection."""
    name, grid = paper_study()
    if grid is not None:
        return _unique_names([(Path(unit).parts[2], unit) for unit in paper_units(grid["objectives"])])
    return alpaca_eval_export_units(wildcards)


PAPER_SHARED = {"results/paper/fig6_objective_shapes.png": "Fig. 6: loss and gradient at beta 0.05",
                "results/paper/beta_grid.png": "beta-grid of DPO and LRML loss and gradient"}


def paper_targets():
    return [*PAPER_SHARED, *paper_artifacts(), *paper_exports(), f"results/{RUN}/config.yaml", "results/paper/MANIFEST.md"]


def paper_manifest():
    """What `snakemake paper` builds under this config, and every preset's artifacts with the command that makes them."""
    import glob

    import yaml

    presets = sorted(glob.glob(str(Path(workflow.basedir) / "configs" / "paper" / "*.yaml")))
    presets.append(str(Path(workflow.basedir) / "configs" / "paper_lite.yaml"))
    listed = {"configured_run": RUN, "shared": PAPER_SHARED, "built": {**paper_artifacts(), **paper_exports()},
              "presets": {}}
    for preset in presets:
        if Path(preset).exists():
            preset_config = yaml.safe_load(Path(preset).read_text())
            listed["presets"][Path(preset).relative_to(workflow.basedir).as_posix()] = preset_config["run"]
    return as_json(listed)


def tldr_reference_outputs(wildcards):
    """The SFT reference's summaries, when a model's are compared with them."""
    return [f"results/{wildcards.run}/reference/tldr/model_outputs.json"] if wildcards.reference == "sft" else []


def tldr_metrics(wildcards):
    name, grid = paper_study()
    references = BENCHMARKS["tldr"]["references"]
    return [f"results/{wildcards.run}/{unit}/tldr/{reference}/metrics.json"
            for unit in paper_units(grid["objectives"]) for reference in references]


# --- the classification family (rules/classification.smk) ------------------------------------------------------------

CLASSIFICATION = config.get("classification", {})
TRANSFER = CLASSIFICATION.get("transfer", {})


def classification_targets():
    """The final archive (every seed), the summary with the verdict, the transfer table and Fig. 2 (left and right)."""
    final = f"results/{RUN}"
    return [f"{final}/gen{GENERATIONS}/archive.jsonl", f"{final}/archive.jsonl", f"{final}/summary.md",
            f"{final}/transfer.csv", f"{final}/figures/fig2_left.png", f"{final}/figures/fig2_right.png"]


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
