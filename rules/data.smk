rule preferences:
    localrule: run_locally("preferences")
    input:
        reference="results/{run}/reference/reference.json",
    output:
        pairs="results/{run}/data/preferences.jsonl",
        heldout="results/{run}/data/heldout_prompts.json",
        record="results/{run}/data/preferences.json",
    params:
        task=config["task"]["name"],
        options=task_options(),
        seed=config["seed"],
        max_length=config["training"]["max_length"],
        device=config["training"]["device"],
        precision=config["training"]["precision"],
    log:
        "results/{run}/logs/preferences.log",
    benchmark:
        "results/{run}/benchmarks/preferences.tsv"
    threads: threads_for("preferences")
    resources:
        mem_mb=scaled_resource("preferences", "mem_mb"),
        runtime=scaled_resource("preferences", "runtime"),
        gpu=resource("preferences", "gpu"),
        cpus_per_gpu=resource("preferences", "cpus_per_gpu"),
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.preferences --task {params.task} --options {params.options:q}"
        " --reference {input.reference} --seed {params.seed} --max-length {params.max_length}"
        " --device {params.device} --precision {params.precision} --threads {threads} --gpus {resources.gpu}"
        " --pairs {output.pairs} --heldout {output.heldout} --record {output.record} > {log} 2>&1"


rule reference_logps:
    input:
        reference="results/{run}/reference/reference.json",
        pairs="results/{run}/data/preferences.jsonl",
    output:
        logps="results/{run}/data/reference_logps.jsonl",
        states="results/{run}/data/frozen_states.pt",
    params:
        training=training_options(),
    log:
        "results/{run}/logs/reference_logps.log",
    benchmark:
        "results/{run}/benchmarks/reference_logps.tsv"
    threads: threads_for("reference_logps")
    resources:
        mem_mb=scaled_resource("reference_logps", "mem_mb"),
        runtime=scaled_resource("reference_logps", "runtime"),
        gpu=resource("reference_logps", "gpu"),
        cpus_per_gpu=resource("reference_logps", "cpus_per_gpu"),
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.reference_logps --reference {input.reference} --pairs {input.pairs}"
        " --training {params.training:q} --threads {threads} --gpus {resources.gpu} --output {output.logps}"
        " --states-output {output.states} > {log} 2>&1"


rule evaluate_reference:
    input:
        reference="results/{run}/reference/reference.json",
        heldout="results/{run}/data/heldout_prompts.json",
        judged=judged_scores,
    output:
        "results/{run}/reference/eval.json",
    params:
        task=config["task"]["name"],
        options=task_options(),
        seed=config["seed"],
        device=config["training"]["device"],
        precision=config["training"]["precision"],
        judged=lambda wildcards, input: f"--judged {input.judged}" if input.judged else "",
    log:
        "results/{run}/logs/evaluate_reference.log",
    benchmark:
        "results/{run}/benchmarks/evaluate_reference.tsv"
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
        " --reference {input.reference} --heldout {input.heldout} --seed {params.seed}"
        " --device {params.device} --precision {params.precision} --threads {threads} --gpus {resources.gpu}"
        " {params.judged} --output {output}"
        " > {log} 2>&1"
