rule reference:
    output:
        "results/{run}/reference/reference.json",
    params:
        source=config["reference"]["source"],
        revision=lambda wildcards: config["reference"].get("revision") or "",
    log:
        "results/{run}/logs/reference.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.reference --source {params.source:q} --revision {params.revision:q}"
        " --output-dir results/{wildcards.run}/reference > {log} 2>&1"
