# The paper's figures and tables (`snakemake paper`): from result files only, each with report() and a caption
# naming its run, settings and seeds. What the configured run supports is built (paper_artifacts in common.smk);
# results/paper/MANIFEST.md lists every preset's artifacts and the command that makes the missing ones.


localrules:
    paper_manifest,
    tldr_table,
    export_fastchat,
    export_alpaca_eval,


rule paper_frontier:
    input:
        "results/{run}/experiments.csv",
    output:
        report("results/{run}/paper/fig5_lrml_vs_{baseline}.png", caption="../report/paper_frontier.rst",
               category="Paper", subcategory="IMDb-style frontiers"),
    params:
        experiment=lambda wildcards: paper_study()[0],
    log:
        "results/{run}/logs/paper/fig5_lrml_vs_{baseline}.log",
    wildcard_constraints:
        baseline="dpo|slic",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.paper_figures frontier --experiments {input} --experiment {params.experiment}"
        " --objectives lrml {wildcards.baseline} --run {wildcards.run} --output {output} > {log} 2>&1"


rule paper_frontiers_all:
    input:
        "results/{run}/experiments.csv",
    output:
        fig8=report("results/{run}/paper/fig8_frontiers.png", caption="../report/paper_frontier.rst",
                    category="Paper", subcategory="IMDb-style frontiers"),
        panels=report("results/{run}/paper/appendix_frontiers.png", caption="../report/paper_frontier.rst",
                      category="Paper", subcategory="IMDb-style frontiers"),
    params:
        experiment=lambda wildcards: paper_study()[0],
    log:
        "results/{run}/logs/paper/fig8.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "(python -m prefdisco.stages.paper_figures frontier --experiments {input} --experiment {params.experiment}"
        " --run {wildcards.run} --output {output.fig8}"
        " && python -m prefdisco.stages.paper_figures panels --experiments {input} --experiment {params.experiment}"
        " --run {wildcards.run} --output {output.panels}) > {log} 2>&1"


rule paper_training_curves:
    input:
        lambda wildcards: [f"results/{wildcards.run}/{u}/train.json"
                           for u in paper_units(PAPER_FIG7_OBJECTIVES, paper_beta())],
    output:
        report("results/{run}/paper/fig7_training_curves.png", caption="../report/paper_training_curves.rst",
               category="Paper"),
    log:
        "results/{run}/logs/paper/fig7.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.paper_figures curves --train-records {input} --run {wildcards.run} --output {output}"
        " > {log} 2>&1"


rule paper_logratios:
    input:
        reference="results/{run}/reference/reference.json",
        policy=lambda wildcards: f"results/{wildcards.run}/{paper_units(['lrml'], paper_beta())[0]}/policy",
        record=lambda wildcards: f"results/{wildcards.run}/{paper_units(['lrml'], paper_beta())[0]}/train.json",
        pairs="results/{run}/data/preferences.jsonl",
        reference_logps="results/{run}/data/reference_logps.jsonl",
    output:
        "results/{run}/paper/lrml_log_ratios.json",
    params:
        training=training_options(),
    log:
        "results/{run}/logs/paper/logratios.log",
    threads: threads_for("train")
    resources:
        mem_mb=scaled_resource("paper_logratios", "mem_mb"),
        runtime=scaled_resource("paper_logratios", "runtime"),
        gpu=resource("paper_logratios", "gpu"),
        cpus_per_gpu=resource("paper_logratios", "cpus_per_gpu"),
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.logratios --reference {input.reference} --policy-dir {input.policy}"
        " --train-record {input.record} --pairs {input.pairs} --reference-logps {input.reference_logps}"
        " --training {params.training:q} --threads {threads} --gpus {resources.gpu} --output {output} > {log} 2>&1"


rule paper_log_ratio_histogram:
    input:
        "results/{run}/paper/lrml_log_ratios.json",
    output:
        report("results/{run}/paper/fig14_log_ratios.png", caption="../report/paper_log_ratios.rst", category="Paper"),
    log:
        "results/{run}/logs/paper/fig14.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.paper_figures histogram --logratios {input} --run {wildcards.run} --output {output}"
        " > {log} 2>&1"


rule paper_table1:
    input:
        lambda wildcards: [f"results/{wildcards.run}/{u}/eval.json" for u in paper_units(paper_study()[1]["objectives"])],
    output:
        report("results/{run}/paper/table1.csv", caption="../report/paper_tables.rst", category="Paper"),
    log:
        "results/{run}/logs/paper/table1.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.paper_figures table1 --evaluations {input} --run {wildcards.run} --output {output}"
        " > {log} 2>&1"


rule paper_shapes:
    output:
        shapes=report("results/paper/fig6_objective_shapes.png", caption="../report/paper_shapes.rst",
                      category="Paper"),
        grid=report("results/paper/beta_grid.png", caption="../report/paper_shapes.rst", category="Paper"),
    log:
        "results/paper/logs/shapes.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "(python -m prefdisco.stages.paper_figures shapes --objectives dpo slic lrml aqfl padll --beta 0.05"
        " --output {output.shapes}"
        " && python -m prefdisco.stages.paper_figures beta-grid --objectives dpo lrml --betas 0.01 0.025 0.05 0.1 0.25 0.5 1.0"
        " --output {output.grid}) > {log} 2>&1"


# TL;DR (task tldr): a model's summaries of the held-out posts, judged pairwise against the human summary or the SFT
# model's by alpaca_eval with our concise-summary annotator; {model} is the reference or a unit.
rule tldr_outputs:
    input:
        unpack(answering_model),
        heldout="results/{run}/data/heldout_prompts.json",
    output:
        outputs="results/{run}/{model}/tldr/model_outputs.json",
        record="results/{run}/{model}/tldr/outputs.json",
    params:
        policy=policy_arguments,
        options=as_json(BENCHMARKS["tldr"]["answers"]),
        model_id=judged_model_id,
        seed=config["seed"],
        device=config["training"]["device"],
        precision=config["training"]["precision"],
    log:
        "results/{run}/logs/{model}/tldr_outputs.log",
    benchmark:
        "results/{run}/benchmarks/{model}/tldr_outputs.tsv"
    wildcard_constraints:
        model=JUDGED_MODEL,
    threads: threads_for("answers")
    resources:
        mem_mb=scaled_resource("answers", "mem_mb"),
        runtime=scaled_resource("answers", "runtime"),
        gpu=resource("answers", "gpu"),
        cpus_per_gpu=resource("answers", "cpus_per_gpu"),
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.judging.tldr outputs --reference {input.reference} {params.policy}"
        " --heldout {input.heldout} --options {params.options:q} --model-id {params.model_id} --seed {params.seed}"
        " --device {params.device} --precision {params.precision} --threads {threads} --gpus {resources.gpu}"
        " --output {output.outputs} --record {output.record} > {log} 2>&1"


rule tldr_annotations:
    localrule: run_locally("tldr_annotations")
    input:
        outputs="results/{run}/{model}/tldr/model_outputs.json",
        record="results/{run}/{model}/tldr/outputs.json",
        heldout="results/{run}/data/heldout_prompts.json",
        sft=tldr_reference_outputs,
    output:
        annotations="results/{run}/{model}/tldr/{reference}/annotations.json",
        metrics="results/{run}/{model}/tldr/{reference}/metrics.json",
    params:
        sft=lambda wildcards, input: f"--sft-outputs {input.sft}" if input.sft else "",
        annotator=as_json(BENCHMARKS["tldr"]["annotator"]),
        cache=JUDGE_CACHE,
        model_id=judged_model_id,
    log:
        "results/{run}/logs/{model}/tldr_{reference}.log",
    benchmark:
        "results/{run}/benchmarks/{model}/tldr_{reference}.tsv"
    wildcard_constraints:
        model=JUDGED_MODEL,
        reference="human|sft",
    resources:
        judge=1,
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.judging.tldr annotate --model-outputs {input.outputs} --model-record {input.record}"
        " --reference {wildcards.reference} {params.sft} --heldout {input.heldout} --annotator {params.annotator:q}"
        " --cache {params.cache} --model-id {params.model_id} --annotations {output.annotations}"
        " --metrics {output.metrics} > {log} 2>&1"


rule tldr_table:
    input:
        tldr_metrics,
    output:
        csv=report("results/{run}/paper/tldr_table.csv", caption="../report/tldr_table.rst", category="Paper"),
        markdown="results/{run}/paper/tldr_table.md",
    log:
        "results/{run}/logs/paper/tldr_table.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.paper_figures tldr-table --metrics {input} --run {wildcards.run} --output {output.csv}"
        " > {log} 2>&1"


# The benchmarks' own tools read these: FastChat's show_result (MT-Bench) and alpaca_eval (its annotation cache).
rule export_fastchat:
    input:
        lambda wildcards: [f"results/{wildcards.run}/{unit}/mt_bench/{f}" for unit in exported_units(wildcards).values()
                           for f in ("model_answer.jsonl", "model_judgment.jsonl")],
    output:
        directory("results/{run}/exports/fastchat"),
    params:
        units=lambda wildcards: " ".join(f"{name}=results/{wildcards.run}/{unit}/mt_bench/model_answer.jsonl:"
                                         f"results/{wildcards.run}/{unit}/mt_bench/model_judgment.jsonl"
                                         for name, unit in exported_units(wildcards).items()),
        judge=MT_BENCH["judge"]["model"],
    log:
        "results/{run}/logs/paper/export_fastchat.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.exports fastchat --units {params.units} --judge {params.judge:q} --output-dir {output}"
        " > {log} 2>&1"


rule export_alpaca_eval:
    input:
        metrics=alpaca_eval_metrics,
        sft=lambda wildcards: [f"results/{wildcards.run}/reference/alpaca_eval/model_outputs.json"]
        if "sft" in ALPACA_EVAL["references"] else [],
        data=benchmark_data("alpaca_eval"),
    output:
        directory("results/{run}/exports/alpaca_eval"),
    params:
        units=lambda wildcards: " ".join(f"{name}=results/{wildcards.run}/{unit}/alpaca_eval"
                                         for name, unit in alpaca_eval_export_units(wildcards).items()),
        references=" ".join(ALPACA_EVAL["references"]),
        sft=lambda wildcards, input: f"--sft-outputs {input.sft}" if input.sft else "",
    log:
        "results/{run}/logs/paper/export_alpaca_eval.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.exports alpaca-eval --units {params.units} --references {params.references}"
        " --data-dir results/{wildcards.run}/data/alpaca_eval {params.sft} --output-dir {output} > {log} 2>&1"


rule paper_manifest:
    input:
        [*PAPER_SHARED, *paper_artifacts(), *paper_exports()],
    output:
        report("results/paper/MANIFEST.md", caption="../report/paper_manifest.rst", category="Paper"),
    params:
        listing=paper_manifest(),
    log:
        "results/paper/logs/manifest.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.paper_manifest --listing {params.listing:q} --output {output} > {log} 2>&1"
