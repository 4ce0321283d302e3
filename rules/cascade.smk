# Decisions beyond noise: every candidate is trained at one seed; those that could still be the best (a checkpoint
# after archive(g) decides) are trained at fitness.seeds seeds, paired with the control objective (fitness.control)
# seed by seed and prompt by prompt. The final archive re-estimates every record from all its seeds and opens the
# summary with the verdict.


localrules:
    replica_objective,


checkpoint promote:
    input:
        archive="results/{run}/gen{g}/archive.jsonl",
        control=control_evaluations(CONTROL_SEEDS),
    output:
        "results/{run}/gen{g}/promotion.json",
    params:
        control=f"--control-name {CONTROL} --kl-penalty {config['fitness']['kl_penalty']} --first-seed {FIRST_SEED}",
    log:
        "results/{run}/logs/gen{g}/promote.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.cascade promote --archive {input.archive} --generation {wildcards.g}"
        " --control {input.control} {params.control} --output {output} > {log} 2>&1"


rule replica_objective:
    input:
        "results/{run}/gen{g}/cand{k}/objective.json",
    output:
        "results/{run}/gen{g}/cand{k}/seed{seed}/objective.json",
    log:
        "results/{run}/logs/gen{g}/cand{k}/seed{seed}/objective.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.candidates replica --objective {input} --seed {wildcards.seed} --output {output}"
        " > {log} 2>&1"


rule final_archive:
    input:
        archive=f"results/{{run}}/gen{GENERATIONS}/archive.jsonl",
        promotions=promotion_decisions,
        replicas=replica_evaluations,
        control=control_evaluations(max(SEEDS, CONTROL_SEEDS)),
    output:
        archive="results/{run}/archive.jsonl",
        verdict="results/{run}/verdict.json",
    params:
        control=f"--control-name {CONTROL} --kl-penalty {config['fitness']['kl_penalty']} --first-seed {FIRST_SEED}",
        seeds=SEEDS,
    log:
        "results/{run}/logs/final_archive.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.cascade final --archive {input.archive} --promotions {input.promotions}"
        " --replicas {input.replicas} --control {input.control} {params.control} --seeds {params.seeds}"
        " --verdict {output.verdict}"
        " --output {output.archive} > {log} 2>&1"
