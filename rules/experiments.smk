# Fixed experiments (the paper's held-out studies): a library objective at a given beta and seed.


localrules:
    experiment_objective,


rule experiment_objective:
    output:
        "results/{run}/experiments/{experiment}/{objective}/beta{beta}/seed{seed}/objective.json",
    params:
        id=lambda wildcards: experiment_unit_id(wildcards.experiment, wildcards.objective, wildcards.beta, wildcards.seed),
    log:
        "results/{run}/logs/experiments/{experiment}/{objective}/beta{beta}/seed{seed}/objective.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.candidates experiment"
        " --id {params.id}"
        " --objective {wildcards.objective} --beta {wildcards.beta} --seed {wildcards.seed}"
        " --output {output} > {log} 2>&1"


rule experiments_table:
    input:
        evaluations=experiment_evaluations,
        reference="results/{run}/reference/eval.json",
    output:
        "results/{run}/experiments.csv",
    log:
        "results/{run}/logs/experiments_table.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.experiments --evaluations {input.evaluations} --reference-eval {input.reference}"
        " --output {output} > {log} 2>&1"
