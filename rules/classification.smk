# The classification family (config family: classification): data once, then each unit -- a discovery candidate
# (gen<g>/cand<k>, a promoted one's further seeds gen<g>/cand<k>/seed<s>), the control at a seed
# (experiments/control/<objective>/seed<s>) or a transfer run (transfer/<model>/<objective>/seed<s>) -- through one
# train -> evaluate chain. The noise-aware fitness, the cascade and the verdict are the preference family's
# (rules/cascade.smk, over training seeds x validation examples); the final archive's best objectives by lower bound
# are transferred to other models; summary.md and Fig. 2 are drawn from the results.


localrules:
    transfer_objective,
    control_objective,


# The control objective (fitness.control) at one more training seed: no beta, unlike a preference experiment.
rule control_objective:
    output:
        "results/{run}/experiments/control/{objective}/seed{seed}/objective.json",
    params:
        id=lambda wildcards: f"control/{wildcards.objective}/seed{wildcards.seed}",
    log:
        "results/{run}/logs/experiments/control/{objective}/seed{seed}/objective.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.candidates experiment --family classification --id {params.id}"
        " --objective {wildcards.objective} --seed {wildcards.seed} --output {output} > {log} 2>&1"


rule classification_data:
    output:
        "results/{run}/data/classification.pt",
    params:
        dataset=CLASSIFICATION["dataset"],
        source=classification_data_source(),
        seed=config["seed"],
    log:
        "results/{run}/logs/classification_data.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.classification.data --dataset {params.dataset} {params.source} --seed {params.seed}"
        " --output {output} > {log} 2>&1"


rule classification_train:
    input:
        objective="results/{run}/{unit}/objective.json",
        data="results/{run}/data/classification.pt",
    output:
        record="results/{run}/{unit}/train.json",
        model="results/{run}/{unit}/model.pt",
    params:
        training=as_json(CLASSIFICATION["training"]),
        sandbox=as_json(config["sandbox"]),
    log:
        "results/{run}/logs/{unit}/train.log",
    benchmark:
        "results/{run}/benchmarks/{unit}/train.tsv"
    threads: threads_for("train")
    resources:
        mem_mb=scaled_resource("train", "mem_mb"),
        runtime=scaled_resource("train", "runtime"),
        gpu=resource("train", "gpu"),
        cpus_per_gpu=resource("train", "cpus_per_gpu"),
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.classification.train --objective {input.objective} --data {input.data}"
        " --training {params.training:q} --sandbox {params.sandbox:q} --threads {threads} --gpus {resources.gpu}"
        " --model-out {output.model} --output {output.record} > {log} 2>&1"


rule classification_evaluate:
    input:
        record="results/{run}/{unit}/train.json",
        model="results/{run}/{unit}/model.pt",
        data="results/{run}/data/classification.pt",
    output:
        "results/{run}/{unit}/eval.json",
    params:
        device=CLASSIFICATION["training"].get("device", "auto"),
    log:
        "results/{run}/logs/{unit}/evaluate.log",
    threads: threads_for("evaluate")
    resources:
        mem_mb=scaled_resource("evaluate", "mem_mb"),
        runtime=scaled_resource("evaluate", "runtime"),
        gpu=resource("evaluate", "gpu"),
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.classification.evaluate --train-record {input.record} --model {input.model}"
        " --data {input.data} --device {params.device} --threads {threads} --gpus {resources.gpu}"
        " --output {output} > {log} 2>&1"


checkpoint transfer_selection:
    input:
        "results/{run}/archive.jsonl",
    output:
        "results/{run}/transfer/selection.json",
    params:
        top=TRANSFER.get("top", 3),
        baselines=" ".join(TRANSFER.get("baselines", ["cross_entropy"])),
    log:
        "results/{run}/logs/transfer_selection.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.classification.transfer select --archive {input} --top {params.top}"
        " --baselines {params.baselines} --output {output} > {log} 2>&1"


rule transfer_objective:
    input:
        "results/{run}/transfer/selection.json",
    output:
        "results/{run}/transfer/{model}/{objective}/seed{seed}/objective.json",
    params:
        epochs=f"--epochs {TRANSFER['epochs']}" if TRANSFER.get("epochs") else "",
    log:
        "results/{run}/logs/transfer/{model}/{objective}/seed{seed}/objective.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.classification.transfer objective --selection {input} --key {wildcards.objective}"
        " --model {wildcards.model} {params.epochs} --seed {wildcards.seed} --output {output} > {log} 2>&1"


rule transfer_table:
    input:
        selection="results/{run}/transfer/selection.json",
        evaluations=transfer_evaluations,
    output:
        "results/{run}/transfer.csv",
    log:
        "results/{run}/logs/transfer_table.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.classification.transfer table --selection {input.selection}"
        " --evaluations {input.evaluations} --output {output} > {log} 2>&1"


rule classification_summary:
    input:
        archive="results/{run}/archive.jsonl",
        verdict="results/{run}/verdict.json",
    output:
        report("results/{run}/summary.md", caption="../report/classification_summary.rst", category="Classification"),
    log:
        "results/{run}/logs/classification_summary.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.classification.summary --archive {input.archive} --verdict {input.verdict}"
        " --output {output} > {log} 2>&1"


rule classification_figures:
    input:
        archive="results/{run}/archive.jsonl",
        transfer="results/{run}/transfer.csv",
    output:
        left=report(
            "results/{run}/figures/fig2_left.png",
            caption="../report/fig2_left.rst",
            category="Classification (Fig. 2)",
        ),
        right=report(
            "results/{run}/figures/fig2_right.png",
            caption="../report/fig2_right.rst",
            category="Classification (Fig. 2)",
        ),
    log:
        "results/{run}/logs/classification_figures.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.classification.figures --archive {input.archive} --transfer {input.transfer}"
        " --left {output.left} --right {output.right} > {log} 2>&1"
