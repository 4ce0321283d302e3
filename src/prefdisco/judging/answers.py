"""Stage: a model's answers to a benchmark, batched, in the format the benchmark's own tools read.

MT-Bench (as FastChat's ``gen_model_answer.py``): both turns of every question, turn 2 conditioned on the model's
own turn-1 answer, in the model's own chat template, at FastChat's per-category temperature (greedy below 1e-4),
written as FastChat's ``model_answer`` JSONL. AlpacaEval: one answer per instruction, written as alpaca_eval's
``model_outputs`` JSON list (instruction, output, generator, dataset).

A candidate whose training failed, or whose weights are not finite, gets no answers: the record says why, and the
judging stages pass the status on to the candidate's evaluation.

CLI::

    python -m prefdisco.judging.answers --benchmark mt_bench --reference R.json [--policy-dir P --train-record T]
        --data-dir D --options JSON --model-id ID --output A.jsonl --record A.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch

from ..cli import json_option, setup_logging
from ..io import read_json, write_json, write_jsonl
from ..devices import assign_gpus
from ..options import options_from
from ..models import load_for_inference, load_tokenizer, precision_of, set_threads, reference_path
from ..records import EVAL_FAILED, OK
from ..sampling import encode_prompts

log = logging.getLogger(__name__)

# FastChat's sampling temperature per MT-Bench category (fastchat/llm_judge/common.py, ``temperature_config``);
# categories not listed are sampled at 0.7, as there.
MT_BENCH_TEMPERATURES = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
    "arena-hard-200": 0.0,
}
DEFAULT_TEMPERATURE = 0.7
GREEDY_BELOW = 1e-4  # FastChat samples greedily below this temperature


@dataclass
class AnswerOptions:
    max_new_tokens: int = 1024  # FastChat's default for MT-Bench; alpaca_eval's model configs use 2048
    batch_size: int = 8
    temperature: float | None = None  # None: MT-Bench's per-category temperatures; AlpacaEval needs a value
    question_ids: list[int] | None = None  # MT-Bench: a subset of questions (None: all)
    max_instances: int | None = None  # AlpacaEval: the first N instructions (None: all 805)


def to_options(raw: dict) -> AnswerOptions:
    return options_from(AnswerOptions, raw, "benchmarks.<benchmark>.answers")


def _end_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids]) if ids is not None else set()
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def render_chat(tokenizer, messages: list[dict]) -> str:
    """The prompt of a conversation in the model's own chat template, ready for the assistant's turn."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"the tokenizer of {tokenizer.name_or_path} has no chat template: benchmark answers are "
                         "generated in the model's own chat template")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@torch.no_grad()
def generate_replies(model, tokenizer, conversations: list[list[dict]], temperatures: list[float],
                     max_new_tokens: int, batch_size: int, seed: int) -> list[str]:
    """The assistant's next reply to each conversation, batched among conversations of equal temperature."""
    model.eval()
    device = next(model.parameters()).device
    end_ids = _end_ids(model, tokenizer)
    replies: list[str | None] = [None] * len(conversations)
    by_temperature: dict[float, list[int]] = {}
    for index, temperature in enumerate(temperatures):
        by_temperature.setdefault(float(temperature), []).append(index)
    batch_number = 0
    for temperature, indices in sorted(by_temperature.items()):
        for start in range(0, len(indices), batch_size):
            batch = indices[start : start + batch_size]
            prompts = [render_chat(tokenizer, conversations[i]) for i in batch]
            encoded = encode_prompts(tokenizer, prompts, rendered_chat=True).to(device)
            torch.manual_seed(seed * 1_000_003 + batch_number)
            batch_number += 1
            sampling = ({"do_sample": True, "temperature": temperature} if temperature >= GREEDY_BELOW
                        else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None})
            output = model.generate(**encoded, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                    eos_token_id=sorted(end_ids), **sampling)
            for i, row in zip(batch, output[:, encoded["input_ids"].shape[1] :].tolist()):
                cut = next((n for n, token in enumerate(row) if token in end_ids), len(row))
                replies[i] = tokenizer.decode(row[:cut], skip_special_tokens=True).strip()
    return replies  # type: ignore[return-value]


def mt_bench_answers(model, tokenizer, questions: list[dict], model_id: str, options: AnswerOptions,
                     seed: int) -> list[dict]:
    """Both turns of every question, as FastChat's model_answer records (one choice, index 0)."""
    temperatures = [MT_BENCH_TEMPERATURES.get(q["category"], DEFAULT_TEMPERATURE) if options.temperature is None
                    else options.temperature for q in questions]
    conversations: list[list[dict]] = [[] for _ in questions]
    turns: list[list[str]] = [[] for _ in questions]
    for turn in range(max(len(q["turns"]) for q in questions)):
        active = [i for i, q in enumerate(questions) if turn < len(q["turns"])]
        for i in active:
            conversations[i].append({"role": "user", "content": questions[i]["turns"][turn]})
        replies = generate_replies(model, tokenizer, [conversations[i] for i in active],
                                   [temperatures[i] for i in active], options.max_new_tokens, options.batch_size,
                                   seed + turn)
        for i, reply in zip(active, replies):
            conversations[i].append({"role": "assistant", "content": reply})
            turns[i].append(reply)
    now = time.time()
    return [{"question_id": q["question_id"], "answer_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{model_id}/{q['question_id']}").hex,
             "model_id": model_id, "choices": [{"index": 0, "turns": t}], "tstamp": now}
            for q, t in zip(questions, turns)]


def alpaca_eval_outputs(model, tokenizer, instructions: list[dict], generator: str, options: AnswerOptions,
                        seed: int) -> list[dict]:
    """One answer per instruction, as alpaca_eval's model_outputs records."""
    temperature = DEFAULT_TEMPERATURE if options.temperature is None else options.temperature
    conversations = [[{"role": "user", "content": row["instruction"]}] for row in instructions]
    replies = generate_replies(model, tokenizer, conversations, [temperature] * len(conversations),
                               options.max_new_tokens, options.batch_size, seed)
    return [{"dataset": row.get("dataset"), "instruction": row["instruction"], "output": reply, "generator": generator}
            for row, reply in zip(instructions, replies)]


def select_questions(questions: list[dict], question_ids: list[int] | None) -> list[dict]:
    if question_ids is None:
        return questions
    by_id = {q["question_id"]: q for q in questions}
    missing = [i for i in question_ids if i not in by_id]
    if missing:
        raise ValueError(f"benchmarks.mt_bench.question_ids: {missing} are not in the question file")
    return [by_id[i] for i in question_ids]


def load_questions(data_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(data_dir) / "question.jsonl").read_text().splitlines() if line.strip()]


def load_instructions(data_dir: Path, max_instances: int | None) -> list[dict]:
    rows = read_json(Path(data_dir) / "alpaca_eval_gpt4_baseline.json")
    return rows if max_instances is None else rows[:max_instances]


def run_answers(benchmark: str, reference_json: Path, policy_dir: Path | None, train_record: dict | None,
                data_dir: Path, options: AnswerOptions, model_id: str, seed: int, device_name: str = "auto",
                precision: str = "auto") -> tuple[list[dict], dict]:
    """(answers, record): the records the benchmark's tools read, and a record of how they were made."""
    started = time.monotonic()
    record = {"model_id": model_id, "benchmark": benchmark, "status": OK, "error": None, "n_answers": 0}
    if train_record is not None and train_record.get("status") != OK:
        record.update(status=train_record.get("status"), error=train_record.get("error"), wall_seconds=0.0)
        return [], record
    model_dir = reference_path(reference_json)
    tokenizer = load_tokenizer(model_dir)
    model = load_for_inference(model_dir, device_name, precision, policy_dir)
    device, precision = model.device, precision_of(model)
    broken = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if broken:
        record.update(status=EVAL_FAILED, wall_seconds=time.monotonic() - started,
                      error=f"trained policy has non-finite weights in {len(broken)} tensors, e.g. {broken[0]}")
        return [], record
    if benchmark == "mt_bench":
        questions = select_questions(load_questions(data_dir), options.question_ids)
        answers = mt_bench_answers(model, tokenizer, questions, model_id, options, seed)
    elif benchmark == "alpaca_eval":
        answers = alpaca_eval_outputs(model, tokenizer, load_instructions(data_dir, options.max_instances),
                                      model_id, options, seed)
    else:
        raise ValueError(f"benchmark {benchmark!r} is not one of mt_bench, alpaca_eval")
    wall = time.monotonic() - started
    record.update(n_answers=len(answers), wall_seconds=wall, device=str(device), precision=precision,
                  device_seconds=wall if device.type == "cuda" else 0.0, options=vars(options))
    return answers, record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", required=True, choices=["mt_bench", "alpaca_eval"])
    parser.add_argument("--reference", type=Path, required=True, help="reference.json")
    parser.add_argument("--policy-dir", type=Path, default=None, help="omit to answer with the reference itself")
    parser.add_argument("--train-record", type=Path, default=None)
    parser.add_argument("--data-dir", type=Path, required=True, help="the benchmark's data folder")
    parser.add_argument("--options", type=json_option, default={})
    parser.add_argument("--model-id", required=True, help="the name the answers are filed under")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gpus", type=int, default=None, help="GPUs of this job, its own (resources.gpu)")
    parser.add_argument("--output", type=Path, required=True, help="model_answer JSONL or model_outputs JSON")
    parser.add_argument("--record", type=Path, required=True, help="how the answers were made (JSON)")
    args = parser.parse_args(argv)
    setup_logging()
    assign_gpus(args.gpus)
    set_threads(args.threads)
    if (args.train_record is None) != (args.policy_dir is None):
        parser.error("--train-record and --policy-dir go together")

    train_record = read_json(args.train_record) if args.train_record else None
    answers, record = run_answers(args.benchmark, args.reference, args.policy_dir, train_record, args.data_dir,
                                  to_options(args.options), args.model_id, args.seed, args.device, args.precision)
    if args.benchmark == "mt_bench":
        write_jsonl(args.output, answers)
    else:
        write_json(args.output, answers)
    write_json(args.record, record)
    log.info("%s: %d %s answers (%s) in %.1f s", args.model_id, record["n_answers"], args.benchmark,
             record["status"], record["wall_seconds"])


if __name__ == "__main__":
    main()
