# Did the search beat chance? Each baseline (BASELINES in common.smk) is a search of its own, run <run>/baselines/<name>,
# through the same propose -> validate -> train -> evaluate -> archive -> cascade rules at the discovery's budget,
# sharing the run's reference, data, reference log-probs, control and generation 0. This table compares the bests.


rule baselines_table:
    input:
        archives=search_archives,
        verdicts=search_verdicts,
        replicas=search_replicas,
        control=control_evaluations(max(SEEDS, CONTROL_SEEDS)),
    output:
        csv=report(
            "results/{run}/baselines.csv",
            caption="../report/baselines.rst",
            category="Search baselines",
        ),
        markdown="results/{run}/baselines.md",
    params:
        names=" ".join(["discovery", *BASELINES]),
        kl_penalty=config["fitness"]["kl_penalty"],
        first_seed=FIRST_SEED,
    log:
        "results/{run}/logs/baselines_table.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.baselines --names {params.names} --archives {input.archives} --verdicts {input.verdicts}"
        " --replicas {input.replicas} --control {input.control} --kl-penalty {params.kl_penalty}"
        " --first-seed {params.first_seed} --csv {output.csv} --markdown {output.markdown} > {log} 2>&1"
