"""A pair whose prompt alone reaches training.max_length is dropped once, where the preference data is built, and
counted in preferences.json: the reference log-probs and every training job then see the same pairs."""

from __future__ import annotations

import json

import pytest
import torch

from prefdisco.io import read_json, read_jsonl, write_json
from prefdisco.models import load_causal_lm, load_tokenizer, prompt_token_count
from prefdisco.objectives import library_source
from prefdisco.stages.preferences import main as preferences_main
from prefdisco.sandbox.worker import ObjectiveWorker
from prefdisco.trainer import (
    TrainingOptions,
    attach_reference_logps,
    compute_reference_logps,
    train_objective,
)

MAX_LENGTH = 96


def conversation(i: int, question: str) -> dict:
    prompt = [{"role": "user", "content": question}]
    return {"chosen": prompt + [{"role": "assistant", "content": f"A kind, clear answer {i}."}],
            "rejected": prompt + [{"role": "assistant", "content": f"No {i}."}], "dataset": "test"}


@pytest.fixture
def chat_data(tmp_path):
    """Nine short conversations, one whose prompt alone is far past MAX_LENGTH, and one held out."""
    rows = [conversation(i, f"Question number {i}?") for i in range(9)]
    rows.insert(4, conversation(99, "Tell me everything about this long story. " * 40))
    rows.append(conversation(100, "A held-out question?"))
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_preferences_stage_drops_a_long_prompt_once_and_training_runs(tiny_model_dir, chat_data, tmp_path):
    write_json(tmp_path / "reference.json", {"source": "tiny", "path": str(tiny_model_dir), "revision": None})
    data = tmp_path / "data"
    preferences_main(["--task", "chat", "--options", json.dumps({"dataset": str(chat_data), "heldout_prompts": 1}),
                      "--reference", str(tmp_path / "reference.json"), "--max-length", str(MAX_LENGTH),
                      "--device", "cpu", "--pairs", str(data / "preferences.jsonl"),
                      "--heldout", str(data / "heldout_prompts.json"), "--record", str(data / "preferences.json")])
    pairs = read_jsonl(data / "preferences.jsonl")
    record = read_json(data / "preferences.json")
    assert record == {"task": "chat", "built_pairs": 10, "pairs": 9, "max_length": MAX_LENGTH,
                      "dropped_long_prompt": 1, "dropped_pair_ids": ["p00004"], "heldout_prompts": 1}
    assert "p00004" not in {p["pair_id"] for p in pairs}

    tokenizer = load_tokenizer(tiny_model_dir)
    assert all(prompt_token_count(tokenizer, p["prompt"]) < MAX_LENGTH for p in pairs)
    opts = TrainingOptions(batch_size=3, max_steps=2, device="cpu", precision="fp32", max_length=MAX_LENGTH,
                           learning_rate=1e-3, lr_scheduler="constant")
    reference_logps = compute_reference_logps(load_causal_lm(tiny_model_dir, torch.device("cpu")), tokenizer, pairs,
                                              opts, tmp_path / "ref")
    assert [r["pair_id"] for r in reference_logps] == [p["pair_id"] for p in pairs]
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    with ObjectiveWorker(library_source("dpo")) as worker:
        _, history = train_objective(model, tokenizer, attach_reference_logps(pairs, reference_logps), worker, opts,
                                     tmp_path / "train")
    assert len([e for e in history if "loss" in e]) == 2


def test_the_count_agrees_with_the_trainer_and_a_kept_long_prompt_is_named(tiny_model_dir, chat_data, tmp_path):
    """prompt_token_count is the trainer's own count: at the boundary, TRL keeps exactly the pairs we keep, and
    a pair the preferences stage did not drop (built with another max_length) is a clear error, not a silent
    mismatch between the reference log-probs and training."""
    from prefdisco.tasks import chat

    tokenizer = load_tokenizer(tiny_model_dir)
    pairs, _ = chat.build(None, None, chat.to_options({"dataset": str(chat_data), "heldout_prompts": 1}), 0)
    length = prompt_token_count(tokenizer, pairs[0]["prompt"])
    opts = TrainingOptions(batch_size=2, device="cpu", precision="fp32", max_length=length + 1)
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    kept = compute_reference_logps(model, tokenizer, pairs[:2], opts, tmp_path / "a")
    assert len(kept) == 2  # prompt one token under max_length: kept by the trainer, as by us
    with pytest.raises(ValueError, match=r"1 pairs \(p00004\) have a prompt of at least training.max_length=96"):
        compute_reference_logps(model, tokenizer, pairs[3:6], TrainingOptions(batch_size=2, device="cpu",
                                precision="fp32", max_length=MAX_LENGTH), tmp_path / "b")
    short = [p for p in pairs if p["pair_id"] == "p00000"]
    with pytest.raises(ValueError, match=r"1 pairs \(p00000\) have a prompt of at least training.max_length"):
        compute_reference_logps(model, tokenizer, short, TrainingOptions(batch_size=2, device="cpu", precision="fp32",
                                max_length=length), tmp_path / "c")
