# Network-bound (a Hugging Face download): run by Snakemake itself unless config local_rules says not.
rule reference:
    localrule: run_locally("reference")
    output:
        "results/{run}/reference/reference.json",
    params:
        source=config["reference"]["source"],
        revision=lambda wildcards: (
            f"--revision {config['reference']['revision']}" if config["reference"]["revision"] else ""
        ),
    log:
        "results/{run}/logs/reference.log",
    benchmark:
        "results/{run}/benchmarks/reference.tsv"
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.stages.reference --source {params.source:q} {params.revision}"
        " --output-dir results/{wildcards.run}/reference > {log} 2>&1"
