# LLM-judged benchmarks. MT-Bench: a model's answers (both turns), FastChat's single-answer grading by the configured
# judge, and its scores, which become the reward when fitness.benchmark is mt_bench. AlpacaEval 2.0: the final
# archive's best objectives held out, their outputs annotated by the weighted GPT-4 Turbo annotator at any endpoint
# against GPT-4 Turbo's or the SFT model's outputs; Table 2 and Fig. 1 (right). {model} is the reference or a unit.


localrules:
    alpaca_eval_selection,
    alpaca_eval_table,


rule mt_bench_data:
    localrule: run_locally("mt_bench_data")
    input:
        benchmark_local_files("mt_bench"),
    output:
        benchmark_data("mt_bench"),
        manifest="results/{run}/data/mt_bench/manifest.json",
    params:
        source=benchmark_source("mt_bench"),
    log:
        "results/{run}/logs/mt_bench_data.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.judging.data --benchmark mt_bench --output-dir results/{wildcards.run}/data/mt_bench"
        " {params.source} --manifest {output.manifest} > {log} 2>&1"


rule mt_bench_answers:
    input:
        unpack(answering_model),
        data=benchmark_data("mt_bench"),
    output:
        answers="results/{run}/{model}/mt_bench/model_answer.jsonl",
        record="results/{run}/{model}/mt_bench/answers.json",
    params:
        policy=policy_arguments,
        options=as_json(MT_BENCH["answers"]),
        model_id=judged_model_id,
        seed=config["seed"],
        device=config["training"]["device"],
        precision=config["training"]["precision"],
    log:
        "results/{run}/logs/{model}/mt_bench_answers.log",
    benchmark:
        "results/{run}/benchmarks/{model}/mt_bench_answers.tsv"
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
        "python -m prefdisco.judging.answers --benchmark mt_bench --reference {input.reference} {params.policy}"
        " --data-dir results/{wildcards.run}/data/mt_bench --options {params.options:q} --model-id {params.model_id}"
        " --seed {params.seed} --device {params.device} --precision {params.precision} --threads {threads}"
        " --gpus {resources.gpu} --output {output.answers} --record {output.record} > {log} 2>&1"


rule mt_bench_judgment:
    localrule: run_locally("mt_bench_judgment")
    input:
        answers="results/{run}/{model}/mt_bench/model_answer.jsonl",
        record="results/{run}/{model}/mt_bench/answers.json",
        data=benchmark_data("mt_bench"),
    output:
        judgments="results/{run}/{model}/mt_bench/model_judgment.jsonl",
        scores="results/{run}/{model}/mt_bench/scores.json",
    params:
        judge=as_json(MT_BENCH["judge"]),
        cache=JUDGE_CACHE,
        model_id=judged_model_id,
    log:
        "results/{run}/logs/{model}/mt_bench_judgment.log",
    benchmark:
        "results/{run}/benchmarks/{model}/mt_bench_judgment.tsv"
    wildcard_constraints:
        model=JUDGED_MODEL,
    resources:
        judge=1,
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.judging.mt_bench --answers {input.answers} --answers-record {input.record}"
        " --data-dir results/{wildcards.run}/data/mt_bench --judge {params.judge:q} --cache {params.cache}"
        " --model-id {params.model_id} --judgments {output.judgments} --scores {output.scores} > {log} 2>&1"


rule mt_bench_radar:
    input:
        archive=f"results/{{run}}/gen{GENERATIONS}/archive.jsonl",
        reference="results/{run}/reference/eval.json",
    output:
        report(
            "results/{run}/figures/mt_bench_radar.png",
            caption="../report/mt_bench_radar.rst",
            category="Judged benchmarks",
        ),
    log:
        "results/{run}/logs/mt_bench_radar.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.judging.figures radar --archive {input.archive} --reference-eval {input.reference}"
        " --output {output} > {log} 2>&1"


rule alpaca_eval_data:
    localrule: run_locally("alpaca_eval_data")
    input:
        benchmark_local_files("alpaca_eval"),
    output:
        benchmark_data("alpaca_eval"),
        manifest="results/{run}/data/alpaca_eval/manifest.json",
    params:
        source=benchmark_source("alpaca_eval"),
    log:
        "results/{run}/logs/alpaca_eval_data.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.judging.data --benchmark alpaca_eval --output-dir results/{wildcards.run}/data/alpaca_eval"
        " {params.source} --manifest {output.manifest} > {log} 2>&1"


checkpoint alpaca_eval_selection:
    input:
        f"results/{{run}}/gen{GENERATIONS}/archive.jsonl",
    output:
        "results/{run}/alpaca_eval/selection.json",
    params:
        top_k=ALPACA_EVAL["top_k"],
        seeds="" if ALPACA_EVAL["include_seeds"] else "--no-seeds",
    log:
        "results/{run}/logs/alpaca_eval_selection.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.judging.tables select --archive {input} --top-k {params.top_k} {params.seeds}"
        " --output {output} > {log} 2>&1"


rule alpaca_eval_outputs:
    input:
        unpack(answering_model),
        data=benchmark_data("alpaca_eval"),
    output:
        outputs="results/{run}/{model}/alpaca_eval/model_outputs.json",
        record="results/{run}/{model}/alpaca_eval/outputs.json",
    params:
        policy=policy_arguments,
        options=as_json(ALPACA_EVAL["answers"]),
        model_id=judged_model_id,
        seed=config["seed"],
        device=config["training"]["device"],
        precision=config["training"]["precision"],
    log:
        "results/{run}/logs/{model}/alpaca_eval_outputs.log",
    benchmark:
        "results/{run}/benchmarks/{model}/alpaca_eval_outputs.tsv"
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
        "python -m prefdisco.judging.answers --benchmark alpaca_eval --reference {input.reference} {params.policy}"
        " --data-dir results/{wildcards.run}/data/alpaca_eval --options {params.options:q}"
        " --model-id {params.model_id} --seed {params.seed} --device {params.device} --precision {params.precision}"
        " --threads {threads} --gpus {resources.gpu} --output {output.outputs} --record {output.record} > {log} 2>&1"


rule alpaca_eval_annotations:
    localrule: run_locally("alpaca_eval_annotations")
    input:
        outputs="results/{run}/{model}/alpaca_eval/model_outputs.json",
        record="results/{run}/{model}/alpaca_eval/outputs.json",
        sft=alpaca_eval_reference_outputs,
        data=benchmark_data("alpaca_eval"),
    output:
        annotations="results/{run}/{model}/alpaca_eval/{reference}/annotations.json",
        metrics="results/{run}/{model}/alpaca_eval/{reference}/metrics.json",
    params:
        sft=lambda wildcards, input: f"--sft-outputs {input.sft}" if input.sft else "",
        annotator=as_json(ALPACA_EVAL["annotator"]),
        cache=JUDGE_CACHE,
        model_id=judged_model_id,
    log:
        "results/{run}/logs/{model}/alpaca_eval_{reference}.log",
    benchmark:
        "results/{run}/benchmarks/{model}/alpaca_eval_{reference}.tsv"
    wildcard_constraints:
        model=JUDGED_MODEL,
        reference="gpt4_turbo|sft",
    resources:
        judge=1,
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.judging.alpaca_eval --model-outputs {input.outputs} --model-record {input.record}"
        " --reference {wildcards.reference} {params.sft} --data-dir results/{wildcards.run}/data/alpaca_eval"
        " --annotator {params.annotator:q} --cache {params.cache} --model-id {params.model_id}"
        " --annotations {output.annotations} --metrics {output.metrics} > {log} 2>&1"


rule alpaca_eval_table:
    input:
        selection="results/{run}/alpaca_eval/selection.json",
        metrics=alpaca_eval_metrics,
    output:
        csv=report(
            "results/{run}/alpaca_eval/table2.csv",
            caption="../report/alpaca_eval_table2.rst",
            category="Judged benchmarks",
        ),
        markdown="results/{run}/alpaca_eval/table2.md",
    log:
        "results/{run}/logs/alpaca_eval_table.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.judging.tables table2 --selection {input.selection} --metrics {input.metrics}"
        " --csv {output.csv} --markdown {output.markdown} > {log} 2>&1"


rule alpaca_eval_figure:
    input:
        "results/{run}/alpaca_eval/table2.csv",
    output:
        report(
            "results/{run}/figures/alpaca_eval_lc_win_rate.png",
            caption="../report/alpaca_eval_lc_win_rate.rst",
            category="Judged benchmarks",
        ),
    log:
        "results/{run}/logs/alpaca_eval_figure.log",
    conda:
        "../envs/prefdisco.yaml"
    shell:
        "python -m prefdisco.judging.figures lc-win-rate --table {input} --output {output} > {log} 2>&1"
