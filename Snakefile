# Discovery of preference-optimization objectives as a cached DAG (DiscoPOP, Lu et al. 2024, reproduced).
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless a run's own config is given (--configfile): a preset for another task must not be
# merged into the default task's options.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/discovery.smk"


# The objective family decides how a unit is trained and scored (src/prefdisco/families).
if FAMILY == "classification":

    include: "rules/classification.smk"
    include: "rules/cascade.smk"

else:

    include: "rules/reference.smk"
    include: "rules/data.smk"
    include: "rules/train_evaluate.smk"
    include: "rules/experiments.smk"
    include: "rules/cascade.smk"
    include: "rules/baselines.smk"
    include: "rules/outputs.smk"
    include: "rules/judging.smk"
    include: "rules/paper.smk"


rule all:
    input:
        all_targets(),
    default_target: True


# Fixed experiments (config `experiments`), e.g. DPO over seeds: `snakemake --cores all experiments`.
rule experiments:
    input:
        experiment_targets(),


# Did the search beat chance? Random search and "sample N, keep the best" at the discovery's budget, beside the run,
# and results/<run>/baselines.{csv,md}: `snakemake --cores all baselines`.
rule baselines:
    input:
        baselines_targets(),


# The paper's figures and tables this run's results support, and results/paper/MANIFEST.md: `snakemake paper`.
rule paper:
    input:
        paper_targets(),
