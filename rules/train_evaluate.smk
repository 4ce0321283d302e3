# The train -> evaluate chain, shared by discovery candidates (gen<g>/cand<k>) and fixed experiments
# (experiments/<name>/<objective>/beta<b>/seed<s>): {unit} is either. A baseline search's units (run
# <run>/baselines/<name>) train on the run's own reference, data and reference log-probs.


rule train:
    input:
        objective="results/{run}/{unit}/objective.json",
        reference=shared("reference/reference.json"),
        pairs=shared("data/preferences.jsonl"),
        reference_logps=shared("data/reference_logps.jsonl"),
        frozen_states=shared("data/frozen_states.pt"),
    output:
        record="results/{run}/{unit}/train.json",
        policy=directory("results/{run}/{unit}/policy"),
    params:
        training=training_options(),
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
        "python -m prefdisco.stages.train --objective {input.objective} --reference {input.reference}"
        " --pairs {input.pairs} --reference-logps {input.reference_logps} --training {params.training:q}"
        " --sandbox {params.sandbox:q} --frozen-states {input.frozen_states}"
        " --threads {threads} --gpus {resources.gpu}"
        " --policy-dir {output.policy} --output {output.record} > {log} 2>&1"


rule evaluate:
    input:
        record="results/{run}/{unit}/train.json",
        policy="results/{run}/{unit}/policy",
        reference=shared("reference/reference.json"),
        heldout=shared("data/heldout_prompts.json"),
        judged=judged_scores,
    output:
        "results/{run}/{unit}/eval.json",
    params:
        task=config["task"]["name"],
        options=task_options(),
        seed=config["seed"],
        kl_penalty=config["fitness"]["kl_penalty"],
        device=config["training"]["device"],
        precision=config["training"]["precision"],
        judged=lambda wildcards, input: f"--judged {input.judged}" if input.judged else "",
    log:
        "results/{run}/logs/{unit}/evaluate.log",
    benchmark:
        "results/{run}/benchmarks/{unit}/evaluate.tsv"
    threads: threads_for("evaluate")
    resources:
        mem_mb=scaled_resource("evaluate", "mem_mb"),
        runtime=scaled_resource("evaluate", "runtime"),
        gpu=resource("evaluate", "gpu"),
        cpus_per_gpu=resource("evaluate", "cpus_per_gpu"),
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.evaluate --task {params.task} --options {params.options:q}"
        " --reference {input.reference} --heldout {input.heldout} --train-record {input.record}"
        " --policy-dir {input.policy} --seed {params.seed} --kl-penalty {params.kl_penalty}"
        " --device {params.device} --precision {params.precision} --threads {threads} --gpus {resources.gpu}"
        " {params.judged} --output {output}"
        " > {log} 2>&1"
