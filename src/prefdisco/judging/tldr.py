"""Stage: TL;DR summaries judged pairwise with AlpacaEval's machinery and a concise-summary annotator.

A model (the SFT reference or a trained unit) summarizes the held-out posts of the ``tldr`` task; the summaries are
compared with the human-written ones (reference ``human``) or with the SFT model's (``sft``) by ``alpaca_eval``'s
``evaluate`` with our own annotator: the prompt ``prefdisco/data/tldr_concise_prompt.txt`` (our wording: a faithful,
complete and concise summary wins), the library's ``logprob_parser`` over the first token's top log-probabilities
("m" for the first summary), and the library's random swap of the two outputs. The instruction each annotation
carries is the post itself, so the judge reads the post. The win rate is the library's.

CLI::

    python -m prefdisco.judging.tldr outputs --reference R.json [--policy-dir P --train-record T] --heldout H.json
        --options JSON --model-id ID --output model_outputs.json --record outputs.json
    python -m prefdisco.judging.tldr annotate --model-outputs M.json --model-record outputs.json --reference human|sft
        --heldout H.json [--sft-outputs S.json] --annotator JSON --cache C --model-id ID --annotations A.json --metrics S.json
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from importlib import resources
from pathlib import Path

import pandas as pd
import torch
import yaml

from ..cli import json_option, setup_logging
from ..devices import assign_gpus
from ..io import read_json, write_json
from ..llm_client import ChatClient, Completion, ReplyCache
from ..models import load_causal_lm, load_tokenizer, resolve_device, resolve_precision, set_threads, reference_path
from ..trained_policy import load_policy
from .alpaca_eval import AnnotatorOptions, _finite, _plain, annotator_options, client_completions, import_alpaca_eval
from .answers import AnswerOptions, generate_replies, to_options

log = logging.getLogger(__name__)

ANNOTATOR = "tldr_concise"
HUMAN, SFT = "human", "sft"


def annotator_config_file(folder: Path, top_logprobs: int) -> Path:
    """An alpaca_eval annotator config with our prompt and the library's log-prob parser ("m" = first output)."""
    prompt = folder / ANNOTATOR / "tldr_concise_prompt.txt"
    prompt.parent.mkdir(parents=True, exist_ok=True)
    prompt.write_text(resources.files("prefdisco").joinpath("data", "tldr_concise_prompt.txt").read_text())
    config = {ANNOTATOR: {
        "prompt_template": str(prompt),
        "completions_kwargs": {"model_name": "judge", "max_tokens": 1, "temperature": 1, "logprobs": True,
                               "top_logprobs": top_logprobs},
        "fn_completion_parser": "logprob_parser",
        "completion_parser_kwargs": {"numerator_token": "m", "denominator_tokens": ["m", "M"], "is_binarize": False},
        "completion_key": "completions_all",
        "batch_size": 1,
    }}
    path = folder / ANNOTATOR / "configs.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def human_outputs(heldout: list[dict]) -> list[dict]:
    return [{"instruction": h["post"], "output": h["human"], "generator": HUMAN} for h in heldout]


def summaries(model, tokenizer, heldout: list[dict], generator: str, options: AnswerOptions, seed: int) -> list[dict]:
    """alpaca_eval model outputs: the instruction is the post, the output the model's summary of it."""
    temperature = 0.7 if options.temperature is None else options.temperature
    replies = generate_replies(model, tokenizer, [h["prompt"] for h in heldout], [temperature] * len(heldout),
                               options.max_new_tokens, options.batch_size, seed)
    return [{"instruction": h["post"], "output": r, "generator": generator} for h, r in zip(heldout, replies)]


def evaluate_summaries(model_outputs: list[dict], reference_outputs: list[dict], annotator: AnnotatorOptions,
                       cache_dir: Path | None, name: str, scratch: Path, seed: int = 0) -> tuple[list[dict], dict]:
    """(annotations, metrics) of ``model_outputs`` against ``reference_outputs`` on the same posts."""
    main = import_alpaca_eval()
    completions: list[Completion] = []
    client = ChatClient(annotator.endpoint(), ReplyCache(cache_dir))
    columns = ["instruction", "output", "generator"]
    answered = {r["instruction"] for r in model_outputs}
    reference = pd.DataFrame([r for r in reference_outputs if r["instruction"] in answered])[columns]
    leaderboard, annotations = main.evaluate(
        model_outputs=pd.DataFrame(model_outputs)[columns].assign(generator=name), reference_outputs=reference,
        annotators_config=str(annotator_config_file(scratch, annotator.top_logprobs)), name=name, output_path=None,
        precomputed_leaderboard=None, is_overwrite_leaderboard=True, is_return_instead_of_print=True,
        caching_path=None, seed=seed, fn_metric="get_winrate", sort_by="win_rate",  # no length control: its GLM is fitted to AlpacaEval
        fn_completions=client_completions(client, annotator.parallel, completions))
    row = leaderboard.loc[name].to_dict()
    sent = [c for c in completions if not c.cached]
    metrics = {key: _finite(row.get(key)) for key in ("win_rate", "standard_error", "discrete_win_rate", "n_wins",
                                                      "n_wins_base", "n_draws", "n_total", "avg_length")}
    metrics["n_unparsed"] = int(pd.DataFrame(annotations)["preference"].isna().sum())
    metrics["judge"] = {"model": annotator.model, "base_url": annotator.base_url, "annotator": ANNOTATOR,
                        "requests": len(completions), "calls": len(sent),
                        "cost_usd": round(sum(c.cost_usd for c in sent), 8)}
    return _plain(annotations), metrics


def _load_model(reference_json: Path, policy_dir: Path | None, device_name: str, precision: str):
    device = resolve_device(device_name)
    precision = resolve_precision(precision, device)
    model_dir = reference_path(reference_json)
    model = load_causal_lm(model_dir, device, precision) if policy_dir is None else load_policy(policy_dir, device, precision)
    return model, load_tokenizer(model_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    out = sub.add_parser("outputs")
    out.add_argument("--reference", type=Path, required=True)
    out.add_argument("--policy-dir", type=Path, default=None)
    out.add_argument("--train-record", type=Path, default=None)
    out.add_argument("--heldout", type=Path, required=True, help="the tldr task's held-out posts (JSON)")
    out.add_argument("--options", type=json_option, default={})
    out.add_argument("--model-id", required=True)
    out.add_argument("--seed", type=int, default=0)
    out.add_argument("--device", default="auto")
    out.add_argument("--precision", default="auto")
    out.add_argument("--threads", type=int, default=None)
    out.add_argument("--gpus", type=int, default=None)
    out.add_argument("--output", type=Path, required=True)
    out.add_argument("--record", type=Path, required=True)
    ann = sub.add_parser("annotate")
    ann.add_argument("--model-outputs", type=Path, required=True)
    ann.add_argument("--model-record", type=Path, required=True)
    ann.add_argument("--reference", required=True, choices=[HUMAN, SFT])
    ann.add_argument("--heldout", type=Path, required=True)
    ann.add_argument("--sft-outputs", type=Path, default=None)
    ann.add_argument("--annotator", type=json_option, default={})
    ann.add_argument("--cache", type=Path, default=None)
    ann.add_argument("--model-id", required=True)
    ann.add_argument("--annotations", type=Path, required=True)
    ann.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    started = time.monotonic()
    if args.command == "outputs":
        assign_gpus(args.gpus)
        set_threads(args.threads)
        record = {"model_id": args.model_id, "benchmark": "tldr", "status": "ok", "error": None}
        train_record = read_json(args.train_record) if args.train_record else None
        outputs: list[dict] = []
        if train_record is not None and train_record.get("status") != "ok":
            record.update(status=train_record.get("status"), error=train_record.get("error"))
        else:
            model, tokenizer = _load_model(args.reference, args.policy_dir, args.device, args.precision)
            with torch.no_grad():
                outputs = summaries(model, tokenizer, read_json(args.heldout), args.model_id, to_options(args.options), args.seed)
        record.update(n_outputs=len(outputs), wall_seconds=time.monotonic() - started)
        write_json(args.output, outputs)
        write_json(args.record, record)
        return
    model_record = read_json(args.model_record)
    record = {"model_id": args.model_id, "reference": args.reference, "status": model_record.get("status", "ok"),
              "error": model_record.get("error")}
    annotations: list[dict] = []
    if record["status"] == "ok":
        heldout = read_json(args.heldout)
        if args.reference == SFT and args.sft_outputs is None:
            parser.error("--reference sft needs --sft-outputs")
        reference = human_outputs(heldout) if args.reference == HUMAN else read_json(args.sft_outputs)
        with tempfile.TemporaryDirectory() as scratch:
            annotations, metrics = evaluate_summaries(read_json(args.model_outputs), reference,
                                                      annotator_options(args.annotator), args.cache, args.model_id,
                                                      Path(scratch))
        record.update(metrics)
    record["wall_seconds"] = time.monotonic() - started
    write_json(args.annotations, annotations)
    write_json(args.metrics, record)
    log.info("%s vs %s: win rate %s", args.model_id, args.reference, record.get("win_rate"))


if __name__ == "__main__":
    main()
