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
