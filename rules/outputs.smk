# Figures, tables and the report, from the final archive.


rule summary:
    input:
        archive="results/{run}/archive.jsonl",
        verdict="results/{run}/verdict.json",
        reference="results/{run}/reference/eval.json",
    output:
        csv=report("results/{run}/summary.csv", caption="../report/summary.rst", category="Discovery",
                   labels={"table": "ranked summary"}),
        markdown=report("results/{run}/summary.md", caption="../report/summary.rst", category="Discovery",
                        labels={"table": "ranked summary (Markdown)"}),
    log:
        "results/{run}/logs/summary.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.summary --archive {input.archive} --verdict {input.verdict} --reference-eval {input.reference}"
        " --csv {output.csv} --markdown {output.markdown} > {log} 2>&1"


rule figures:
    input:
        archive="results/{run}/archive.jsonl",
        reference="results/{run}/reference/eval.json",
    output:
        fitness=report(
            "results/{run}/figures/fitness_over_generations.png",
            caption="../report/fitness_over_generations.rst",
            category="Discovery",
        ),
        shapes=report(
            "results/{run}/figures/objective_shapes.png",
            caption="../report/objective_shapes.rst",
            category="Discovery",
        ),
        reward_kl=report(
            "results/{run}/figures/reward_vs_kl.png",
            caption="../report/reward_vs_kl.rst",
            category="Discovery",
        ),
    log:
        "results/{run}/logs/figures.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.figures --archive {input.archive} --reference-eval {input.reference}"
        " --fitness-figure {output.fitness} --shapes-figure {output.shapes}"
        " --reward-kl-figure {output.reward_kl} > {log} 2>&1"


# The run's resolved config, for the report (`snakemake --report`).
rule run_config:
    localrule: True
    output:
        report("results/{run}/config.yaml", caption="../report/run_config.rst", category="Run config"),
    params:
        config=as_json(config),
    log:
        "results/{run}/logs/run_config.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.run_config --config {params.config:q} --output {output} > {log} 2>&1"


# `snakemake verify`: every record parses and matches the sha256 of each input it names; prints the command that
# rebuilds only what a damaged file affects. Builds nothing itself.
rule verify:
    localrule: True
    params:
        run=f"results/{RUN}",
    log:
        f"results/{RUN}/logs/verify.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.verify {params.run} --report {log}"
