# One generation: propose K candidates from archive(g-1), validate them in the sandbox (a checkpoint: it decides
# which candidates reach training), train and evaluate the valid new ones, and write archive(g).


localrules:
    candidate_objective,


# Network-bound (an LLM API): run by Snakemake itself, on a cluster's login node, unless config local_rules says not.
rule propose:
    localrule: run_locally("propose")
    input:
        proposal_archive,
    output:
        proposals="results/{run}/gen{g}/proposals.json",
        transcripts=directory("results/{run}/gen{g}/transcripts"),
    params:
        archive=lambda wildcards, input: f"--archive {input[0]}" if input else "",
        family=FAMILY,
        seed_objectives=" ".join(config["discovery"]["seed_objectives"]),
        population=config["discovery"]["population"],
        backend=proposer_backend,
        options=proposer_options,
        seed=config["seed"],
        cache=config["llm_cache"],
    log:
        "results/{run}/logs/gen{g}/propose.log",
    benchmark:
        "results/{run}/benchmarks/gen{g}/propose.tsv"
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.propose --generation {wildcards.g} {params.archive} --family {params.family}"
        " --seed-objectives {params.seed_objectives} --population {params.population}"
        " --backend {params.backend} --backend-options {params.options:q} --seed {params.seed}"
        " --transcripts {output.transcripts} --cache {params.cache:q} --output {output.proposals} > {log} 2>&1"


checkpoint validate:
    input:
        proposals="results/{run}/gen{g}/proposals.json",
        archive=previous_archive,
    output:
        "results/{run}/gen{g}/validation.json",
    params:
        archive=lambda wildcards, input: f"--archive {input.archive}" if input.archive else "",
        family=FAMILY,
        beta=beta_argument(),
        cpu_seconds=config["sandbox"]["cpu_seconds"],
        memory_mb=config["sandbox"]["memory_mb"],
        wall_seconds=config["sandbox"]["wall_seconds"],
    log:
        "results/{run}/logs/gen{g}/validate.log",
    benchmark:
        "results/{run}/benchmarks/gen{g}/validate.tsv"
    resources:
        mem_mb=scaled_resource("validate", "mem_mb"),
        runtime=scaled_resource("validate", "runtime"),
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.validate --proposals {input.proposals} {params.archive} --family {params.family} {params.beta}"
        " --cpu-seconds {params.cpu_seconds} --memory-mb {params.memory_mb} --wall-seconds {params.wall_seconds}"
        " --output {output} > {log} 2>&1"


rule candidate_objective:
    input:
        proposals="results/{run}/gen{g}/proposals.json",
        validation="results/{run}/gen{g}/validation.json",
    output:
        "results/{run}/gen{g}/cand{k}/objective.json",
    params:
        id=lambda wildcards: candidate_id(int(wildcards.g), int(wildcards.k)),
    log:
        "results/{run}/logs/gen{g}/cand{k}/objective.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.candidates candidate --proposals {input.proposals} --validation {input.validation}"
        " --id {params.id} --output {output} > {log} 2>&1"


rule archive:
    input:
        previous=previous_archive,
        proposals="results/{run}/gen{g}/proposals.json",
        validation="results/{run}/gen{g}/validation.json",
        trainings=generation_trainings,
        evaluations=generation_evaluations,
        control=control_evaluations(CONTROL_SEEDS),
    output:
        "results/{run}/gen{g}/archive.jsonl",
    params:
        previous=lambda wildcards, input: f"--previous {input.previous}" if input.previous else "",
        control=control_arguments(),
    log:
        "results/{run}/logs/gen{g}/archive.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.archive {params.previous} --proposals {input.proposals}"
        " --validation {input.validation} --trainings {input.trainings} --evaluations {input.evaluations}"
        " --control {input.control} {params.control} --output {output} > {log} 2>&1"
