"""The config schema: the shipped configs pass; a wrong key, type or value fails naming the key."""

from __future__ import annotations

import copy

import jsonschema
import pytest
import yaml

from conftest import REPO

SCHEMA = yaml.safe_load((REPO / "src" / "prefdisco" / "schemas" / "config.schema.yaml").read_text())
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def errors(config: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(config)]


def test_shipped_configs_are_valid():
    assert errors(DEFAULT) == []
    tiny = yaml.safe_load((REPO / "tests" / "workflow" / "tiny_config.yaml").read_text())
    assert errors(tiny) == []
    presets = sorted((REPO / "configs").glob("*.yaml")) + [REPO / "tests" / "workflow" / "chat_config.yaml"]
    assert len(presets) >= 2
    for path in presets:
        assert errors(yaml.safe_load(path.read_text())) == [], path


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("training", "learning_rate"), "fast", "training.learning_rate: 'fast' is not of type 'number'"),
    (("training", "precision"), "fp8", "training.precision: 'fp8' is not one of"),
    (("discovery", "population"), 0, "discovery.population: 0 is less than the minimum of 1"),
    (("discovery", "seed_objectives"), ["dpo", "dpo2"], "discovery.seed_objectives.1: 'dpo2' is not one of"),
    (("task", "options", "samples_per_prompt"), 1, "task.options.samples_per_prompt: 1 is less than the minimum of 2"),
    (("task", "name"), "cifar", "task.name: 'cifar' is not one of ['sentiment', 'chat', 'imdb', 'tldr']"),
    (("fitness", "benchmark"), "alpaca_eval", "fitness.benchmark: 'alpaca_eval' is not one of ['task', 'mt_bench']"),
    (("training", "distributed"), "horovod", "training.distributed: 'horovod' is not one of"),
    (("resources", "train", "cpus_per_gpu"), 0, "resources.train.cpus_per_gpu: 0 is less than the minimum of 1"),
    (("local_rules",), ["train"], "local_rules.0: 'train' is not one of"),
])
def test_bad_values_name_the_key(path, value, expected):
    config = copy.deepcopy(DEFAULT)
    section = config
    for key in path[:-1]:
        section = section[key]
    section[path[-1]] = value
    assert any(e.startswith(expected) for e in errors(config)), errors(config)


def test_unknown_keys_are_rejected_by_name():
    config = copy.deepcopy(DEFAULT)
    config["training"]["learnig_rate"] = 1e-4
    config["task"]["options"]["max_new_token"] = 3
    found = " ".join(errors(config))
    assert "'learnig_rate' was unexpected" in found and "'max_new_token' was unexpected" in found


@pytest.mark.parametrize(("proposer", "expected"), [
    ({"backend": "openai", "options": {"model": "gpt-4"}}, "discovery.proposer.options: 'base_url' is a required property"),
    ({"backend": "openai", "options": {"base_url": "api.openai.com", "model": "gpt-4"}},
     "discovery.proposer.options.base_url: 'api.openai.com' does not match"),
    ({"backend": "openai", "options": {"base_url": "http://h/v1", "model": "m", "prices": {"inptu": 1}}},
     "discovery.proposer.options.prices: Additional properties are not allowed ('inptu' was unexpected)"),
    ({"backend": "replay"}, "discovery.proposer: 'options' is a required property"),
    ({"backend": "transformers", "options": {"modle": "smollm2"}}, "discovery.proposer.options: Additional properties"),
    ({"backend": "gpt"}, "discovery.proposer.backend: 'gpt' is not one of"),
])
def test_proposer_options_are_checked_per_backend(proposer, expected):
    config = copy.deepcopy(DEFAULT)
    config["discovery"]["proposer"] = proposer
    assert any(e.startswith(expected) for e in errors(config)), errors(config)


def test_llm_proposer_configs_pass():
    config = copy.deepcopy(DEFAULT)
    config["discovery"]["proposer"] = {"backend": "openai", "options": {
        "base_url": "https://api.openai.com/v1", "model": "gpt-4", "api_key_env": "OPENAI_API_KEY",
        "temperatures": [0.7, 1.0], "prices": {"input": 30.0, "output": 60.0}}}
    assert errors(config) == []
    config["discovery"]["proposer"] = {"backend": "transformers", "options": {"model": "smollm2", "max_tokens": 512}}
    assert errors(config) == []
    config["discovery"]["proposer"] = {"backend": "replay", "options": {"transcript": "paper"}}
    assert errors(config) == []


def test_judged_settings_are_checked_by_name():
    chat = yaml.safe_load((REPO / "configs" / "paper" / "discovery.yaml").read_text())
    broken = copy.deepcopy(chat)
    broken["fitness"]["benchmark"] = "task"  # the chat task has no reward but the judge's
    assert any(e.startswith("fitness.benchmark: 'mt_bench' was expected") for e in errors(broken)), errors(broken)
    broken = copy.deepcopy(chat)
    del broken["benchmarks"]
    assert any("'benchmarks' is a required property" in e for e in errors(broken)), errors(broken)
    broken = copy.deepcopy(chat)
    broken["benchmarks"]["mt_bench"]["judge"]["top_logprobs"] = 5  # an annotator setting, not the judge's
    broken["benchmarks"]["alpaca_eval"]["references"] = ["gpt4"]
    broken["benchmarks"]["alpaca_eval"]["annotator"]["base_url"] = "api.openai.com"
    found = errors(broken)
    assert any(e.startswith("benchmarks.mt_bench.judge: Additional properties") and "top_logprobs" in e for e in found)
    assert any(e.startswith("benchmarks.alpaca_eval.references.0: 'gpt4' is not one of") for e in found)
    assert any(e.startswith("benchmarks.alpaca_eval.annotator.base_url: 'api.openai.com' does not match") for e in found)


# --- the schema is the only source of defaults (Snakemake validates with set_default) ----------------------------

SCHEMA_PATH = REPO / "src" / "prefdisco" / "schemas" / "config.schema.yaml"
MINIMAL = {
    "run": "minimal", "seed": 0, "reference": {"source": "smollm2"},
    "task": {"name": "sentiment", "options": {}},
    "training": {"beta": 0.1, "learning_rate": 1e-4, "batch_size": 4},
    "fitness": {"kl_penalty": 0.0},
    "discovery": {"generations": 1, "population": 1, "seed_objectives": ["dpo"], "proposer": {"backend": "evolution"}},
}


def with_defaults(config: dict) -> dict:
    """The config as the workflow sees it: validated by Snakemake, schema defaults filled in."""
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(SCHEMA_PATH), set_default=True)
    return config


def schema_defaults(node: dict) -> dict:
    """{key: default} of the properties of a schema node (following a $ref into $defs)."""
    found = {}
    if "$ref" in node:
        found.update(schema_defaults(SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]))
    found.update({k: v["default"] for k, v in node.get("properties", {}).items() if "default" in v})
    return found


def dataclass_defaults(cls) -> dict:
    import dataclasses

    values = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            values[f.name] = f.default_factory()
    return values


def test_a_minimal_config_gets_every_default_from_the_schema():
    config = with_defaults(MINIMAL)
    assert config["sandbox"] == {"cpu_seconds": 20, "memory_mb": 4096, "wall_seconds": 60}
    assert config["training"]["device"] == "auto" and config["training"]["trainable_layers"] is None
    assert config["training"]["distributed"] == "deepspeed_zero3"
    assert config["task"]["options"]["samples_per_prompt"] == 4
    assert config["discovery"]["proposer"]["options"] == {"tournament_size": 3, "mutation_rate": 0.7,
                                                          "crossover_rate": 0.3, "max_depth": 5, "max_tries": 200}
    assert config["threads"]["train"] == 1
    assert config["resources"]["train"] == {"mem_mb": 6000, "runtime": 60, "gpu": 0, "cpus_per_gpu": None}
    assert config["resources"]["validate"]["mem_mb"] == 6000
    assert config["experiments"] == {} and config["fitness"]["benchmark"] == "task"
    assert config["benchmarks"]["alpaca_eval"]["held_out"] is False
    assert config["benchmarks"]["alpaca_eval"]["references"] == ["gpt4_turbo"]
    assert config["benchmarks"]["mt_bench"]["judge"]["model"] == "gpt-4"
    assert config["benchmarks"]["mt_bench"]["data_dir"] is None
    assert config["llm_cache"] == "results/llm_cache"
    # a value the config gives is kept
    given = copy.deepcopy(MINIMAL)
    given["sandbox"] = {"wall_seconds": 5}
    given["resources"] = {"train": {"gpu": 2}}
    config = with_defaults(given)
    assert config["sandbox"] == {"cpu_seconds": 20, "memory_mb": 4096, "wall_seconds": 5}
    assert config["resources"]["train"] == {"mem_mb": 6000, "runtime": 60, "gpu": 2, "cpus_per_gpu": None}


def test_defaults_fill_in_the_branch_of_the_chosen_backend_and_task_only():
    config = copy.deepcopy(MINIMAL)
    config["discovery"]["proposer"] = {"backend": "openai", "options": {"base_url": "http://h/v1", "model": "m"}}
    config["task"] = {"name": "chat", "options": {"dataset": "local.jsonl"}}
    config["fitness"]["benchmark"] = "mt_bench"
    config["benchmarks"] = {"mt_bench": {"judge": {"model": "judge"}}}
    config = with_defaults(config)
    options = config["discovery"]["proposer"]["options"]
    assert options["json_mode"] is True and options["max_tokens"] == 1024 and "tournament_size" not in options
    assert config["task"]["options"]["heldout_prompts"] == 32 and "samples_per_prompt" not in config["task"]["options"]
    assert config["benchmarks"]["mt_bench"]["judge"] == {**schema_defaults(SCHEMA["$defs"]["judge"]), "model": "judge"}
    # the checks that need the config as written still run before the defaults fill it in
    del config["benchmarks"]
    from snakemake.utils import validate
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError, match="benchmarks"):
        validate(config, str(SCHEMA_PATH), set_default=True)


def test_the_sandbox_limits_agree():
    from prefdisco.sandbox.runner import SandboxLimits

    schema = schema_defaults(SCHEMA["properties"]["sandbox"])
    limits = dataclass_defaults(SandboxLimits)
    assert schema == {k: limits[k] for k in schema} == {"cpu_seconds": 20, "memory_mb": 4096, "wall_seconds": 60}
    assert DEFAULT["sandbox"] == schema


def _proposer_branch(backend: str) -> dict:
    branches = SCHEMA["properties"]["discovery"]["properties"]["proposer"]["allOf"]
    return next(b["then"]["properties"]["options"] for b in branches if b["if"]["properties"]["backend"]["const"] == backend)


def _task_branch(name: str) -> dict:
    branches = SCHEMA["properties"]["task"]["allOf"]
    return next(b["then"]["properties"]["options"] for b in branches if b["if"]["properties"]["name"]["const"] == name)


def test_option_dataclasses_keep_the_schemas_defaults():
    """The dataclasses keep defaults for entry points run by hand; where both give one, they are the same."""
    from prefdisco.judging.alpaca_eval import AnnotatorOptions
    from prefdisco.judging.answers import AnswerOptions
    from prefdisco.judging.mt_bench import JudgeOptions
    from prefdisco.llm_client import EndpointOptions
    from prefdisco.proposers.evolution import EvolutionOptions
    from prefdisco.proposers.llm import ProtocolOptions
    from prefdisco.proposers.local_model import LocalModelOptions
    from prefdisco.tasks.chat import ChatOptions
    from prefdisco.tasks.sentiment import SentimentOptions
    from prefdisco.trainer import TrainingOptions

    openai_code = {**dataclass_defaults(EndpointOptions), **dataclass_defaults(ProtocolOptions),
                   "json_mode": True}  # propose.py asks the proposer's endpoint for JSON
    pairs = [
        (SCHEMA["properties"]["training"], dataclass_defaults(TrainingOptions)),
        (_task_branch("sentiment"), dataclass_defaults(SentimentOptions)),
        (_task_branch("chat"), dataclass_defaults(ChatOptions)),
        (_proposer_branch("evolution"), dataclass_defaults(EvolutionOptions)),
        (_proposer_branch("openai"), openai_code),
        (_proposer_branch("transformers"), {**dataclass_defaults(LocalModelOptions), **dataclass_defaults(ProtocolOptions)}),
        (SCHEMA["$defs"]["answers"], dataclass_defaults(AnswerOptions)),
        (SCHEMA["$defs"]["judge"], dataclass_defaults(JudgeOptions)),
        (SCHEMA["$defs"]["annotator"], dataclass_defaults(AnnotatorOptions)),
    ]
    for node, code in pairs:
        schema = schema_defaults(node)
        assert schema, node
        assert {k: code[k] for k in schema if k in code} == schema
        # every optional key the schema names and the code has a default for has one in the schema too
        optional = [k for k in node["properties"] if k not in node.get("required", [])]
        assert sorted(k for k in optional if k in code and k not in schema) == []


# --- what the schema cannot say, checked before any job (prefdisco.config_checks, called from rules/common.smk) ----


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("reference", "source"), "./models/missing-sft", "reference.source: './models/missing-sft' looks like a local"),
    (("reference", "source"), "/nowhere/model", "reference.source: '/nowhere/model' looks like a local"),
    (("discovery", "proposer"), {"backend": "replay", "options": {"transcript": "runs/old/archive.jsonl"}},
     "discovery.proposer.options.transcript: 'runs/old/archive.jsonl' does not exist"),
    (("training", "trainable_layers"), 31, "training.trainable_layers: 31 is more than the 30 decoder layers"),
])
def test_config_checks_name_the_key(tmp_path, path, value, expected):
    from prefdisco.config_checks import config_errors

    config = with_defaults(DEFAULT)
    section = config
    for key in path[:-1]:
        section = section[key]
    section[path[-1]] = value
    found = config_errors(config, tmp_path)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_config_checks_pass_what_exists(tmp_path, tiny_model_dir):
    from prefdisco.config_checks import config_errors, gguf_block_count, layer_count

    config = with_defaults(DEFAULT)
    assert config_errors(config, tmp_path) == []  # smollm2 with its top 4 of 30 layers trained
    config["training"]["trainable_layers"] = 30
    config["discovery"]["proposer"] = {"backend": "replay", "options": {"transcript": "paper"}}
    assert config_errors(config, tmp_path) == []
    (tmp_path / "archive.jsonl").write_text("")
    config["discovery"]["proposer"]["options"]["transcript"] = "archive.jsonl"  # relative to the working folder
    config["reference"]["source"] = str(tiny_model_dir)
    config["training"]["trainable_layers"] = 2
    assert config_errors(config, tmp_path) == []
    config["training"]["trainable_layers"] = 3
    assert config_errors(config, tmp_path) == [
        f"training.trainable_layers: 3 is more than the 2 decoder layers of the reference model {str(tiny_model_dir)!r}"]
    assert layer_count("HuggingFaceH4/not-in-any-cache") is None  # a Hub id not downloaded: training checks it
    from prefdisco.gguf import smollm2_gguf

    assert gguf_block_count(smollm2_gguf()) == 30
    with pytest.raises(ValueError, match="not a GGUF file"):
        gguf_block_count(tiny_model_dir / "config.json")


def test_the_workflow_rejects_a_bad_config_before_any_job(tmp_path):
    import subprocess
    import sys

    config = copy.deepcopy(DEFAULT)
    config["training"]["trainable_layers"] = 999
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "1",
                             "--directory", str(tmp_path), "-n"], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "training.trainable_layers: 999 is more than the 30 decoder layers" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()
