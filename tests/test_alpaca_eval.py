"""AlpacaEval 2.0 through the alpaca_eval library: its weighted GPT-4 Turbo annotator pointed at real servers (a
scripted one with exact log-probabilities, llama.cpp for a real model), win rate and length-controlled win rate from
the pinned calibration file, the reply cache, and the library's import and download traps."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loopback import ScriptedServer, free_port
from prefdisco.io import read_json
from prefdisco.judging import alpaca_eval
from prefdisco.judging.alpaca_eval import AnnotatorOptions, evaluate_outputs, reference_outputs_for
from prefdisco.llm_client import ChatClient, EndpointOptions, ReplyCache, ServerError

DATA = Path(__file__).parent / "fixtures" / "judging" / "alpaca_eval"


def eval_set() -> list[dict]:
    return read_json(DATA / "alpaca_eval_gpt4_baseline.json")


def model_outputs(rows: list[dict]) -> list[dict]:
    return [{"dataset": r["dataset"], "instruction": r["instruction"], "generator": "tiny",
             "output": ("A longer and more detailed answer. " * 3) if i % 2 else "Short."} for i, r in enumerate(rows)]


def test_pkg_resources_is_not_needed():
    """alpaca_eval 0.6.6 imports pkg_resources; setuptools >= 81 has none. Hide it and import the library."""
    script = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pkg_resources': raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from prefdisco.judging.alpaca_eval import import_alpaca_eval\n"
        "main = import_alpaca_eval()\n"
        "from alpaca_eval import utils\n"
        "assert utils.check_pkg_atleast_version('pandas', '0.1')\n"
        "assert utils.get_package_version('pandas')\n"
        "print(sys.modules['pkg_resources'].__doc__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "prefdisco's stand-in" in result.stdout


def test_annotator_config_is_the_librarys(tmp_path):
    alpaca_eval.import_alpaca_eval()
    from alpaca_eval import constants

    path = alpaca_eval.annotator_config_file(tmp_path, 7)
    ours = yaml.safe_load(path.read_text())[alpaca_eval.ANNOTATOR]
    theirs = yaml.safe_load((Path(constants.EVALUATORS_CONFIG_DIR) / alpaca_eval.ANNOTATOR / "configs.yaml")
                            .read_text())[alpaca_eval.ANNOTATOR]
    assert "fn_completions" not in ours and theirs["fn_completions"] == "openai_completions"
    assert Path(ours["prompt_template"]).is_file() and ours["prompt_template"].endswith(theirs["prompt_template"])
    assert ours["fn_completion_parser"] == theirs["fn_completion_parser"] == "logprob_parser"
    assert ours["completion_parser_kwargs"] == theirs["completion_parser_kwargs"]
    assert theirs["completions_kwargs"]["model_name"] == "gpt-4-1106-preview" == AnnotatorOptions().model
    assert ours["completions_kwargs"] == {**theirs["completions_kwargs"], "top_logprobs": 7}


def test_the_hub_is_never_asked(tmp_path):
    alpaca_eval.import_alpaca_eval()
    from alpaca_eval.metrics import glm_winrate

    with alpaca_eval.local_hub_files({"df_gamed.csv": DATA / "df_gamed.csv"}):
        assert glm_winrate.hf_hub_download("tatsu-lab/alpaca_eval", "df_gamed.csv") == str(DATA / "df_gamed.csv")
        with pytest.raises(FileNotFoundError, match="instruction_difficulty.csv, which prefdisco does not provide"):
            glm_winrate.hf_hub_download("tatsu-lab/alpaca_eval", "instruction_difficulty.csv", repo_type="dataset")
    assert glm_winrate.hf_hub_download.__module__.startswith("huggingface_hub")


def test_client_returns_logprobs_and_caches_them(tmp_path):
    with ScriptedServer([(200, "M"), (200, "M")], logprobs={"M": -0.1, "m": -2.5, "The": -4.0}) as server:
        client = ChatClient(EndpointOptions(base_url=server.url, model="judge"), ReplyCache(tmp_path))
        first = client.complete([{"role": "user", "content": "m or M?"}], max_tokens=1, top_logprobs=3)
        again = client.complete([{"role": "user", "content": "m or M?"}], max_tokens=1, top_logprobs=3)
        plain = client.complete([{"role": "user", "content": "m or M?"}], max_tokens=1)  # another request
    assert server.requests[0]["logprobs"] is True and server.requests[0]["top_logprobs"] == 3
    assert "logprobs" not in server.requests[1] and len(server.requests) == 2
    assert first.logprobs[0]["top_logprobs"][:2] == [{"token": "M", "logprob": -0.1}, {"token": "m", "logprob": -2.5}]
    assert again.cached and again.logprobs == first.logprobs and plain.logprobs is None
    # without top_logprobs the request key is the one the client always used: old cache entries still hit
    assert ReplyCache.key({"model": "judge", "messages": [{"role": "user", "content": "m or M?"}], "temperature": 1.0,
                           "max_tokens": 1, "sample": ""}) in {p.stem for p in tmp_path.rglob("*.json")}


def test_a_server_without_logprobs_is_an_error(tmp_path):
    with ScriptedServer([(200, "M")]) as server:  # answers, but with no logprobs
        client = ChatClient(EndpointOptions(base_url=server.url, model="judge"), ReplyCache(None))
        with pytest.raises(ServerError, match="returned no logprobs"):
            client.complete([{"role": "user", "content": "x"}], top_logprobs=5)


def test_weighted_annotator_on_a_scripted_server(tmp_path):
    """P(m) = 0.8 for every pair: output_1 (whichever the library put first) is preferred with probability 0.8."""
    rows = eval_set()
    logprobs = {"m": math.log(0.8), "M": math.log(0.2)}
    with ScriptedServer([(200, "m")] * len(rows), logprobs=logprobs) as server:
        options = AnnotatorOptions(base_url=server.url, model="gpt-4-1106-preview", parallel=2,
                                   prices={"input": 10.0, "output": 30.0})
        annotations, metrics = evaluate_outputs(model_outputs(rows), rows, [r["instruction"] for r in rows],
                                                DATA / "df_gamed.csv", options, tmp_path / "cache", "tiny", tmp_path)
    request = server.requests[0]
    assert request["model"] == "gpt-4-1106-preview" and request["max_tokens"] == 1 and request["top_logprobs"] == 5
    assert request["messages"][0]["role"] == "system" and "## Best Model Identifier" in request["messages"][1]["content"]
    # the library shuffles the two outputs per instruction and un-shuffles the preference: 2 - 0.8 or 1 + 0.8
    preferences = sorted(round(a["preference"], 6) for a in annotations)
    assert all(p in (1.2, 1.8) for p in preferences)
    assert metrics["win_rate"] == pytest.approx(100 * sum(p - 1 for p in preferences) / len(preferences))
    assert metrics["n_total"] == 4 and metrics["n_unparsed"] == 0 and metrics["avg_length"] > 0
    assert 0 <= metrics["lc_win_rate"] <= 100 and metrics["lc_standard_error"] is not None
    assert metrics["judge"]["calls"] == 4 and metrics["judge"]["cost_usd"] == pytest.approx(4 * (100 * 10 + 10 * 30) / 1e6)
    assert set(annotations[0]) >= {"instruction", "output_1", "output_2", "generator_1", "generator_2", "preference"}
    assert {a["generator_2"] for a in annotations} == {"tiny"}


def test_references(tmp_path):
    rows = eval_set()
    outputs = model_outputs(rows[:2])
    gpt4 = reference_outputs_for("gpt4_turbo", DATA, outputs, None)
    assert [r["instruction"] for r in gpt4] == [r["instruction"] for r in rows[:2]]
    assert {r["generator"] for r in gpt4} == {"gpt4_1106_preview"}
    sft = [{**o, "generator": "reference", "output": "sft says"} for o in model_outputs(rows)]
    assert [r["output"] for r in reference_outputs_for("sft", DATA, outputs, sft)] == ["sft says"] * 2
    with pytest.raises(ValueError, match="needs the reference model's outputs"):
        reference_outputs_for("sft", DATA, outputs, None)


@pytest.fixture(scope="module")
def llama_annotator(llama_url):
    return llama_url


def test_real_llama_annotator_and_cached_rescore(llama_annotator, tmp_path):
    rows = eval_set()
    options = AnnotatorOptions(base_url=llama_annotator, model="smollm2", top_logprobs=20, parallel=1,
                               prices={"input": 10.0, "output": 30.0})
    args = (model_outputs(rows), rows, [r["instruction"] for r in rows], DATA / "df_gamed.csv")
    annotations, metrics = evaluate_outputs(*args, options, tmp_path / "cache", "tiny", tmp_path)
    assert metrics["judge"]["calls"] == 4 and metrics["judge"]["completion_tokens"] == 4
    parsed = [a["preference"] for a in annotations if a["preference"] is not None]
    assert len(parsed) + metrics["n_unparsed"] == 4 and all(1 <= p <= 2 for p in parsed)
    assert metrics["win_rate"] is None or 0 <= metrics["win_rate"] <= 100

    dead = AnnotatorOptions(**{**options.__dict__, "base_url": f"http://127.0.0.1:{free_port()}/v1", "max_retries": 0})
    again, rescored = evaluate_outputs(*args, dead, tmp_path / "cache", "tiny", tmp_path)
    assert rescored["judge"]["calls"] == 0 and rescored["judge"]["cache_hits"] == 4
    assert rescored["win_rate"] == metrics["win_rate"] and rescored["lc_win_rate"] == metrics["lc_win_rate"]


def test_cli_passes_failed_outputs_on(tmp_path):
    (tmp_path / "outputs.json").write_text("[]")
    (tmp_path / "record.json").write_text(json.dumps({"status": "eval_failed", "error": "non-finite weights"}))
    alpaca_eval.main(["--model-outputs", str(tmp_path / "outputs.json"), "--model-record", str(tmp_path / "record.json"),
                      "--reference", "gpt4_turbo", "--data-dir", str(DATA), "--model-id", "gen1-cand0",
                      "--annotations", str(tmp_path / "a.json"), "--metrics", str(tmp_path / "m.json")])
    metrics = read_json(tmp_path / "m.json")
    assert metrics["status"] == "eval_failed" and metrics["error"] == "non-finite weights"
    assert read_json(tmp_path / "a.json") == []


def test_length_control_sees_each_instructions_position(tmp_path, monkeypatch):
    """The GLM looks instruction difficulty up by position in the evaluation set, not by row in the annotations."""
    alpaca_eval.import_alpaca_eval()
    from alpaca_eval.metrics import glm_winrate

    seen = []
    original = glm_winrate._get_featurized_data

    def spy(df_annotations, **kwargs):
        seen.append(sorted(df_annotations.reset_index()["index"].tolist()))
        return original(df_annotations, **kwargs)

    monkeypatch.setattr(glm_winrate, "_get_featurized_data", spy)
    rows = eval_set()
    with ScriptedServer([(200, "m")] * 2, logprobs={"m": math.log(0.3), "M": math.log(0.7)}) as server:
        options = AnnotatorOptions(base_url=server.url, parallel=1)
        evaluate_outputs(model_outputs(rows)[2:], rows[2:], [r["instruction"] for r in rows], DATA / "df_gamed.csv",
                         options, None, "tiny", tmp_path)
    assert seen == [[2, 3]]
