"""Stage: AlpacaEval 2.0 of one model against a reference model's outputs, through the alpaca_eval library.

The annotator is the library's own ``weighted_alpaca_eval_gpt4_turbo`` (its prompt, its ``logprob_parser`` over the
top-5 log-probabilities of the first token, its random swap of the two outputs), with one change: its completions
come from :class:`prefdisco.llm_client.ChatClient`, so any OpenAI-compatible endpoint and model can judge, with
prefdisco's retries, reply cache (a re-score makes no call) and cost accounting. ``alpaca_eval.main.evaluate``
then gives the win rate, and the length-controlled win rate comes from the library's
``get_length_controlled_winrate``.

Three traps of alpaca_eval 0.6.6 are avoided here, not worked around in the environment:
- it imports ``pkg_resources``, which setuptools >= 81 no longer ships: a two-function stand-in is registered
  when the real module is missing (:func:`import_alpaca_eval`);
- its default evaluation set goes through a dataset script that ``datasets`` >= 4 rejects: the evaluation set is
  read from the pinned JSON file instead, and passed in as data;
- its length-controlled win rate downloads ``df_gamed.csv`` from the Hub on every call (and numbers instructions
  by their row in the annotations): the pinned copy is used, and rows carry their position in the evaluation set.

CLI::

    python -m prefdisco.judging.alpaca_eval --model-outputs M.json --reference-outputs R.json --data-dir D
        --annotator JSON --cache C --annotations A.json --metrics S.json
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
import time
import types
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import yaml

from ..cli import json_option, setup_logging
from ..io import read_json, write_json
from ..llm_client import ChatClient, Completion, EndpointOptions, ReplyCache, endpoint_options
from ..options import options_from
from ..records import OK

log = logging.getLogger(__name__)

ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
GPT4_TURBO = "gpt4_turbo"  # the evaluation set's own outputs (gpt4_1106_preview)
SFT = "sft"  # the run's reference (SFT) model's outputs, as in the paper's Table 2


@dataclass
class AnnotatorOptions:
    """The weighted GPT-4 Turbo annotator's endpoint: the library's defaults, any OpenAI-compatible server."""

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4-1106-preview"
    api_key_env: str = "OPENAI_API_KEY"
    top_logprobs: int = 5  # the library's setting; the parser needs "m" or "M" among them
    timeout_seconds: float = 60
    max_retries: int = 6
    max_retry_seconds: float = 600
    backoff_seconds: float = 2.0
    parallel: int = 8
    prices: dict = field(default_factory=lambda: {"input": 10.0, "output": 30.0})  # gpt-4-1106-preview, USD/1M

    def endpoint(self) -> EndpointOptions:
        return endpoint_options(self)


def annotator_options(raw: dict) -> AnnotatorOptions:
    return options_from(AnnotatorOptions, raw, "benchmarks.alpaca_eval.annotator")


# --- the library, imported without its traps ------------------------------------------------------------------------


def _pkg_resources_stand_in() -> types.ModuleType:
    """The two functions alpaca_eval.utils takes from pkg_resources, on importlib.metadata and packaging."""
    from importlib.metadata import version
    from packaging.version import parse

    module = types.ModuleType("pkg_resources")
    module.parse_version = parse  # type: ignore[attr-defined]
    module.get_distribution = lambda name: types.SimpleNamespace(version=version(name))  # type: ignore[attr-defined]
    module.__doc__ = "prefdisco's stand-in: setuptools >= 81 ships no pkg_resources, alpaca_eval 0.6.6 imports it"
    return module


def import_alpaca_eval() -> types.ModuleType:
    """``alpaca_eval.main``, importable with or without setuptools' pkg_resources."""
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401  (setuptools < 81)
        except ImportError:
            sys.modules["pkg_resources"] = _pkg_resources_stand_in()
    import alpaca_eval.main

    return alpaca_eval.main


@contextlib.contextmanager
def local_hub_files(files: dict[str, Path]) -> Iterator[None]:
    """Serve the length-controlled win rate's Hub downloads from local copies; any other Hub file is an error."""
    from alpaca_eval.metrics import glm_winrate

    def hf_hub_download(repo_id: str, filename: str, **kwargs: Any) -> str:
        if filename not in files:
            raise FileNotFoundError(f"alpaca_eval asked for {repo_id}/{filename}, which prefdisco does not provide "
                                    f"offline (it provides {sorted(files)})")
        return str(files[filename])

    original = glm_winrate.hf_hub_download
    glm_winrate.hf_hub_download = hf_hub_download
    try:
        yield
    finally:
        glm_winrate.hf_hub_download = original


def annotator_config_file(folder: Path, top_logprobs: int) -> Path:
    """The library's weighted GPT-4 Turbo config, with completions left to prefdisco's client.

    ``fn_completions`` is dropped from the copy (it is passed in as a function) and the prompt template is made
    absolute; everything else (prompt, parser and its tokens, batch size) is the library's.
    """
    from alpaca_eval import constants

    source = Path(constants.EVALUATORS_CONFIG_DIR) / ANNOTATOR / "configs.yaml"
    config = yaml.safe_load(source.read_text())
    annotator = config[ANNOTATOR]
    annotator.pop("fn_completions")
    annotator["prompt_template"] = str(Path(constants.EVALUATORS_CONFIG_DIR) / annotator["prompt_template"])
    annotator["completions_kwargs"]["top_logprobs"] = top_logprobs
    path = folder / ANNOTATOR / "configs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def client_completions(client: ChatClient, parallel: int, completions: list[Completion]):
    """An alpaca_eval ``fn_completions`` that asks ``client``; every reply is appended to ``completions``."""
    from alpaca_eval.utils import prompt_to_chatml

    def fn_completions(prompts: list[str], model_name: str, max_tokens: int = 1, temperature: float = 1.0,
                       logprobs: bool = True, top_logprobs: int = 5, **ignored: Any) -> dict[str, list]:
        def one(prompt: str) -> tuple[Completion, float]:
            started = time.monotonic()
            completion = client.complete(prompt_to_chatml(prompt.strip()), temperature=temperature,
                                         max_tokens=max_tokens, top_logprobs=top_logprobs if logprobs else None)
            return completion, time.monotonic() - started

        with ThreadPoolExecutor(max(1, parallel)) as pool:
            done = list(pool.map(one, prompts))
        completions.extend(c for c, _ in done)
        return {
            "completions": [c.content or " " for c, _ in done],
            "price_per_example": [c.cost_usd for c, _ in done],
            "time_per_example": [seconds for _, seconds in done],
            # the parser reads OpenAI's chat-choice shape: choice["logprobs"]["content"][i]["top_logprobs"]
            "completions_all": [{"text": c.content or " ", "logprobs": {"content": c.logprobs or []},
                                 "total_tokens": c.prompt_tokens + c.completion_tokens} for c, _ in done],
        }

    return fn_completions


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def evaluate_outputs(model_outputs: list[dict], reference_outputs: list[dict], instructions: list[str],
                     gamed_csv: Path, annotator: AnnotatorOptions, cache_dir: Path | None, name: str,
                     scratch: Path, seed: int = 0) -> tuple[list[dict], dict]:
    """(annotations, metrics) of ``model_outputs`` against ``reference_outputs``.

    ``instructions`` is the evaluation set's instruction order: the length-controlled GLM looks each annotation's
    instruction difficulty up by that position.
    """
    main = import_alpaca_eval()
    from alpaca_eval.metrics.glm_winrate import get_length_controlled_winrate

    position = {text: i for i, text in enumerate(instructions)}

    def length_controlled(annotations: list[dict], **_: Any) -> dict:
        frame = pd.DataFrame(annotations)
        unknown = [text for text in frame["instruction"] if text not in position]
        if unknown:
            raise ValueError(f"annotated instruction not in the evaluation set: {unknown[0][:80]!r}")
        frame.index = [position[text] for text in frame["instruction"]]
        with warnings.catch_warnings():  # scikit-learn's deprecations of what alpaca_eval 0.6.6 passes (pinned < 1.10)
            warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
            return get_length_controlled_winrate(frame, save_weights_dir=None, is_add_glm_preference_inplace=False)

    completions: list[Completion] = []
    client = ChatClient(annotator.endpoint(), ReplyCache(cache_dir))
    config = annotator_config_file(scratch, annotator.top_logprobs)
    columns = ["instruction", "output", "generator"]
    model = pd.DataFrame(model_outputs)[columns].assign(generator=name)
    reference = pd.DataFrame(reference_outputs)[columns]
    with local_hub_files({"df_gamed.csv": gamed_csv}):
        leaderboard, annotations = main.evaluate(
            model_outputs=model, reference_outputs=reference, annotators_config=str(config), name=name,
            output_path=None, precomputed_leaderboard=None, is_overwrite_leaderboard=True,
            is_return_instead_of_print=True, fn_metric=length_controlled, caching_path=None, seed=seed,
            fn_completions=client_completions(client, annotator.parallel, completions))
    row = leaderboard.loc[name].to_dict()
    sent = [c for c in completions if not c.cached]
    metrics = {
        "win_rate": _finite(row.get("win_rate")),
        "standard_error": _finite(row.get("standard_error")),
        "lc_win_rate": _finite(row.get("length_controlled_winrate")),
        "lc_standard_error": _finite(row.get("lc_standard_error")),
        "discrete_win_rate": _finite(row.get("discrete_win_rate")),
        "n_wins": _finite(row.get("n_wins")),
        "n_wins_base": _finite(row.get("n_wins_base")),
        "n_draws": _finite(row.get("n_draws")),
        "n_total": _finite(row.get("n_total")),
        "avg_length": _finite(row.get("avg_length")),
        "n_unparsed": int(pd.DataFrame(annotations)["preference"].isna().sum()),
        "judge": {"model": annotator.model, "base_url": annotator.base_url, "annotator": ANNOTATOR,
                  "requests": len(completions), "cache_hits": len(completions) - len(sent), "calls": len(sent),
                  "prompt_tokens": sum(c.prompt_tokens for c in sent),
                  "completion_tokens": sum(c.completion_tokens for c in sent),
                  "cost_usd": round(sum(c.cost_usd for c in sent), 8),
                  "total_cost_usd": round(sum(c.cost_usd for c in completions), 8)},
    }
    return _plain(annotations), metrics


def _plain(annotations: Any) -> list[dict]:
    """Annotations as JSON-ready records (alpaca_eval's annotations.json)."""
    frame = pd.DataFrame(annotations)
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def run_alpaca_eval(model_outputs: list[dict], reference_outputs: list[dict], reference_name: str, data_dir: Path,
                    annotator: AnnotatorOptions, cache_dir: Path | None, model_id: str, model_record: dict,
                    scratch: Path) -> tuple[list[dict], dict]:
    started = time.monotonic()
    record = {"model_id": model_id, "reference": reference_name, "status": model_record.get("status", OK),
              "error": model_record.get("error")}
    if record["status"] != OK:
        return [], {**record, "wall_seconds": 0.0}
    if not reference_outputs:
        raise ValueError(f"AlpacaEval reference {reference_name!r} has no outputs")
    eval_set = read_json(Path(data_dir) / "alpaca_eval_gpt4_baseline.json")
    annotations, metrics = evaluate_outputs(model_outputs, reference_outputs, [r["instruction"] for r in eval_set],
                                            Path(data_dir) / "df_gamed.csv", annotator, cache_dir, model_id, scratch)
    record.update(metrics)
    record["wall_seconds"] = time.monotonic() - started
    return annotations, record


def reference_outputs_for(reference_name: str, data_dir: Path, model_outputs: list[dict],
                          sft_outputs: list[dict] | None) -> list[dict]:
    """The outputs a model is compared with: the evaluation set's GPT-4 Turbo outputs, or the SFT model's, on the
    instructions the model answered."""
    if reference_name == GPT4_TURBO:
        rows = read_json(Path(data_dir) / "alpaca_eval_gpt4_baseline.json")
    elif reference_name == SFT:
        if sft_outputs is None:
            raise ValueError("reference 'sft' needs the reference model's outputs (--sft-outputs)")
        rows = sft_outputs
    else:
        raise ValueError(f"benchmarks.alpaca_eval.references: {reference_name!r} is not one of {GPT4_TURBO}, {SFT}")
    answered = {r["instruction"] for r in model_outputs}
    return [{**r, "generator": r.get("generator") or reference_name} for r in rows if r["instruction"] in answered]


def main(argv: list[str] | None = None) -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-outputs", type=Path, required=True, help="alpaca_eval model_outputs JSON")
    parser.add_argument("--model-record", type=Path, required=True, help="how the outputs were made (JSON)")
    parser.add_argument("--reference", required=True, choices=[GPT4_TURBO, SFT])
    parser.add_argument("--sft-outputs", type=Path, default=None, help="the reference model's model_outputs JSON")
    parser.add_argument("--data-dir", type=Path, required=True, help="AlpacaEval data folder")
    parser.add_argument("--annotator", type=json_option, default={}, help="annotator endpoint options (JSON)")
    parser.add_argument("--cache", type=Path, default=None, help="folder of the judge reply cache")
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--annotations", type=Path, required=True, help="output: annotations JSON")
    parser.add_argument("--metrics", type=Path, required=True, help="output: metrics JSON")
    args = parser.parse_args(argv)
    setup_logging()

    model_outputs = read_json(args.model_outputs)
    sft = read_json(args.sft_outputs) if args.sft_outputs else None
    reference = reference_outputs_for(args.reference, args.data_dir, model_outputs, sft) if model_outputs else []
    with tempfile.TemporaryDirectory() as scratch:
        annotations, record = run_alpaca_eval(model_outputs, reference, args.reference, args.data_dir,
                                              annotator_options(args.annotator), args.cache, args.model_id,
                                              read_json(args.model_record), Path(scratch))
    write_json(args.annotations, annotations)
    write_json(args.metrics, record)
    log.info("%s vs %s: win rate %s, LC win rate %s (%s); judge %s", args.model_id, args.reference,
             record.get("win_rate"), record.get("lc_win_rate"), record["status"], record.get("judge"))


if __name__ == "__main__":
    main()
