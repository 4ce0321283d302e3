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
    presets = sorted((REPO / "configs").glob("*.yaml"))
    assert presets
    for path in presets:
        assert errors(yaml.safe_load(path.read_text())) == [], path


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("training", "learning_rate"), "fast", "training.learning_rate: 'fast' is not of type 'number'"),
    (("training", "precision"), "fp8", "training.precision: 'fp8' is not one of"),
    (("discovery", "population"), 0, "discovery.population: 0 is less than the minimum of 1"),
    (("discovery", "seed_objectives"), ["dpo", "dpo2"], "discovery.seed_objectives.1: 'dpo2' is not one of"),
    (("task", "options", "samples_per_prompt"), 1, "task.options.samples_per_prompt: 1 is less than the minimum of 2"),
    (("task", "name"), "imdb", "task.name: 'imdb' is not one of ['sentiment']"),
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
