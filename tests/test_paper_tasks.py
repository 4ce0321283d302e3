"""The paper's IMDb and TL;DR tasks and the reference stage's Hub and GGUF sources, on small local files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from prefdisco.models import load_causal_lm, load_tokenizer
from prefdisco.stages.reference import download_patterns, provide_reference
from prefdisco.tasks import get_task

POST = "SUBREDDIT: r/cats TITLE: My cat opens doors POST: Every night my cat Zorblax opens the pantry door."


def test_hub_download_takes_bin_weights_when_there_are_no_safetensors():
    assert "*.bin" in download_patterns(["config.json", "pytorch_model.bin", "vocab.json", "merges.txt"])
    both = download_patterns(["config.json", "model.safetensors", "pytorch_model.bin"])
    assert "*.safetensors" in both and "*.bin" not in both
    with pytest.raises(ValueError, match="reference.source"):
        download_patterns(["config.json", "README.md"])


def test_a_local_gguf_file_is_a_reference(tmp_path):
    from prefdisco.gguf import smollm2_gguf

    gguf = smollm2_gguf()
    description = provide_reference(str(gguf), tmp_path / "reference")
    folder = Path(description["path"])
    assert (folder / "config.json").exists() and any(folder.glob("*.safetensors"))
    assert json.loads((tmp_path / "reference" / "reference.json").read_text())["source"] == str(gguf)
    with pytest.raises(ValueError, match="not a .gguf"):
        (tmp_path / "notes.txt").write_text("x")
        provide_reference(str(tmp_path / "notes.txt"), tmp_path / "other")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def imdb_folder(folder: Path) -> Path:
    """An imdb_preference-like dataset: train and test splits of (prompt, chosen, rejected) as parquet."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    train = [{"prompt": f"This movie number {i} was", "chosen": " wonderful and moving.", "rejected": " dull."}
             for i in range(10)]
    train.append({"prompt": "Same", "chosen": " same", "rejected": " same"})  # no preference: dropped
    test = [{"prompt": f"I watched film {i} and", "chosen": " loved it", "rejected": " hated it"} for i in range(5)]
    pd.DataFrame(train).to_parquet(folder / "train.parquet")
    pd.DataFrame(test).to_parquet(folder / "test.parquet")
    return folder


def tiny_classifier(folder: Path) -> Path:
    """A tiny random text-classification model (labels NEGATIVE/POSITIVE) with a word-piece vocabulary."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "this", "movie", "was", "wonderful", "dull", "i", "film"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, id2label={0: "NEGATIVE", 1: "POSITIVE"},
                        label2id={"NEGATIVE": 0, "POSITIVE": 1})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_imdb_pairs_and_heldout_prompts_from_local_parquet(tmp_path):
    task = get_task("imdb")
    options = task.to_options({"dataset": str(imdb_folder(tmp_path / "imdb")), "heldout_prompts": 3})
    pairs, heldout = task.build(None, None, options, 0)
    assert len(pairs) == 10 and pairs[0]["prompt"] == "This movie number 0 was"
    assert pairs[0]["chosen"] == " wonderful and moving." and pairs[0]["rejected"] == " dull."
    assert heldout == ["I watched film 0 and", "I watched film 1 and", "I watched film 2 and"]
    with pytest.raises(ValueError, match="task.options .task 'imdb'.*unknown"):
        task.to_options({"reward": "x"})


def test_imdb_score_with_a_local_classifier_and_token_level_kl(tmp_path, tiny_model_dir):
    task = get_task("imdb")
    classifier = tiny_classifier(tmp_path / "classifier")
    options = task.to_options({"reward_model": str(classifier), "max_new_tokens": 6, "batch_size": 4})
    tokenizer = load_tokenizer(tiny_model_dir)
    reference = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    policy = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    prompts = ["This movie was", "I watched film"]
    same = task.score(reference, load_causal_lm(tiny_model_dir, torch.device("cpu")), tokenizer, prompts, options, 0)
    moved = task.score(policy, reference, tokenizer, prompts, options, 0)
    assert same["kl"] == pytest.approx(0.0, abs=1e-5)  # identical weights: every token's KL is 0
    assert moved["kl"] > 0.0 and moved["kl_kind"] == "token-level"
    assert len(moved["per_prompt"]["reward"]) == 2 and len(moved["per_prompt"]["kl"]) == 2
    assert all(0.0 <= r <= 1.0 for r in moved["per_prompt"]["reward"])  # P(POSITIVE)
    assert moved["reward"] == pytest.approx(sum(moved["per_prompt"]["reward"]) / 2)
    with pytest.raises(ValueError, match="reward_label 'GOOD'"):
        task.score(policy, reference, tokenizer, prompts, task.to_options({"reward_model": str(classifier),
                                                                          "reward_label": "GOOD"}), 0)


def test_imdb_offline_scorer(tiny_model_dir):
    task = get_task("imdb")
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    metrics = task.score(model, None, tokenizer, ["A great", "A bad"], task.to_options(
        {"reward_model": "vader", "max_new_tokens": 4}), 0)
    assert metrics["kl"] == 0.0 and all(0 <= r <= 1 for r in metrics["per_prompt"]["reward"])
    assert not math.isnan(metrics["reward"])


def tldr_file(path: Path) -> Path:
    rows = [{"prompt": f"SUBREDDIT: r/x TITLE: post {i} POST: text of post number {i}.",
             "chosen": f"TL;DR: summary {i}", "rejected": f"TL;DR: bad {i}"} for i in range(40)]
    rows[0]["prompt"] = POST
    return write_jsonl(path, rows)


def test_tldr_post_reaches_the_policy_prompt(tmp_path):
    task = get_task("tldr")
    options = task.to_options({"dataset": str(tldr_file(tmp_path / "tldr.jsonl")), "train_fraction": 1.0,
                               "heldout_fraction": 0.25, "heldout_every": 2})
    pairs, heldout = task.build(None, None, options, 0)
    assert len(pairs) == 30 and len(heldout) == 5  # the last 10 rows are held out, every 2nd of them judged
    assert pairs[0]["prompt"] == [{"role": "user", "content": POST + "\n\nTL;DR:"}]  # the post, not a literal
    assert pairs[0]["chosen"] == [{"role": "assistant", "content": "summary 0"}]
    assert heldout[0]["post"] in heldout[0]["prompt"][0]["content"] and heldout[0]["human"] == "summary 30"


def test_tldr_judge_reads_the_post_and_policy_summaries(tmp_path, tiny_model_dir):
    from loopback import ScriptedServer

    from prefdisco.judging.alpaca_eval import AnnotatorOptions
    from prefdisco.judging.answers import AnswerOptions
    from prefdisco.judging.tldr import evaluate_summaries, human_outputs, summaries

    heldout = [{"post": POST, "prompt": [{"role": "user", "content": POST + "\n\nTL;DR:"}], "human": "cat opens doors"},
               {"post": "POST: rain all week.", "prompt": [{"role": "user", "content": "POST: rain all week.\n\nTL;DR:"}],
                "human": "it rained"}]
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    outputs = summaries(model, tokenizer, heldout, "tiny", AnswerOptions(max_new_tokens=5, batch_size=2, temperature=0.7), 0)
    assert [o["instruction"] for o in outputs] == [POST, "POST: rain all week."]
    with ScriptedServer([(200, "m")] * 2, logprobs={"m": math.log(0.9), "M": math.log(0.1)}) as server:
        annotations, metrics = evaluate_summaries(outputs, human_outputs(heldout),
                                                  AnnotatorOptions(base_url=server.url, parallel=1), None, "tiny",
                                                  tmp_path)
    judged = [r["messages"][-1]["content"] for r in server.requests]
    assert any("Zorblax" in text and "cat opens doors" in text for text in judged)  # the post and the human summary
    assert metrics["n_total"] == 2 and 0 <= metrics["win_rate"] <= 100
    assert {a["generator_2"] for a in annotations} == {"tiny"}
