"""The TL;DR study through the rules: a summarize_comparisons-like file, a tiny model trained with two objectives,
its summaries and the SFT model's judged by a scripted judge on loopback, and the TL;DR table of `snakemake paper`.
The post must reach both the policy (its training and summary prompts) and the judge (the instruction it reads).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from loopback import ScriptedServer
from tiny_runs import snakemake

REPO = Path(__file__).resolve().parents[1]
POSTS = [f"SUBREDDIT: r/pets TITLE: pet story {i} POST: My parrot Quibblefritz{i} learned word {i} today." for i in range(24)]

pytestmark = pytest.mark.workflow


def write_comparisons(path: Path) -> Path:
    rows = [{"prompt": post, "chosen": f"TL;DR: parrot {i} learned a word", "rejected": f"TL;DR: bird thing {i}"}
            for i, post in enumerate(POSTS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_config(folder: Path, model_dir: Path, judge_url: str) -> Path:
    config = {
        "run": "tldr", "seed": 0, "reference": {"source": str(model_dir)},
        "task": {"name": "tldr", "options": {"dataset": str(write_comparisons(folder / "comparisons.jsonl")),
                                             "train_fraction": 1.0, "heldout_fraction": 0.25, "heldout_every": 2,
                                             "max_new_tokens": 4, "batch_size": 4}},
        "training": {"beta": 0.05, "learning_rate": 1.0e-3, "batch_size": 4, "max_steps": 2, "max_length": 128,
                     "trainable_layers": None, "device": "cpu", "precision": "fp32", "eval_pairs": 0},
        "fitness": {"kl_penalty": 0.0},
        "discovery": {"generations": 0, "population": 1, "seed_objectives": ["dpo"],
                      "proposer": {"backend": "evolution"}},
        "llm_cache": "results/llm_cache",
        "benchmarks": {"tldr": {"references": ["human", "sft"],
                                "answers": {"max_new_tokens": 6, "batch_size": 4, "temperature": 0.7},
                                "annotator": {"base_url": judge_url, "model": "scripted-judge", "parallel": 1,
                                              "max_retries": 0, "top_logprobs": 2}}},
        "experiments": {"tldr": {"objectives": ["dpo", "lrml"], "betas": [0.05], "seeds": [0]}},
        "threads": {"preferences": 1, "train": 1, "evaluate": 1, "answers": 1},
        "resources": {},
        "local_rules": ["tldr_annotations"],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_tldr_study_through_the_rules(tmp_path, tiny_model_dir):
    # The judge prefers the first summary with probability 0.8 ("m"), whatever it is shown.
    with ScriptedServer(lambda request: (200, "m"), logprobs={"m": math.log(0.8), "M": math.log(0.2)}) as judge:
        config = write_config(tmp_path, tiny_model_dir, judge.url)
        snakemake(tmp_path, "paper", "--configfile", str(config))
    run = tmp_path / "results" / "tldr"
    heldout = json.loads((run / "data" / "heldout_prompts.json").read_text())
    assert [h["post"] for h in heldout] == POSTS[18::2]  # the last quarter, every 2nd post, never trained on
    pairs = [json.loads(line) for line in (run / "data" / "preferences.jsonl").read_text().splitlines()]
    assert pairs[0]["prompt"][0]["content"] == POSTS[0] + "\n\nTL;DR:"  # the policy is trained on the post itself
    assert all(p["prompt"][0]["content"].split("\n\n")[0] in POSTS[:18] for p in pairs)

    units = ["experiments/tldr/dpo/beta0.05/seed0", "experiments/tldr/lrml/beta0.05/seed0"]
    for model in ["reference", *units]:
        outputs = json.loads((run / model / "tldr" / "model_outputs.json").read_text())
        assert [o["instruction"] for o in outputs] == POSTS[18::2]  # each summary was asked of the post
        assert all(o["generator"] == model.replace("/", "-") for o in outputs)
    for unit in units:
        for reference in ("human", "sft"):
            metrics = json.loads((run / unit / "tldr" / reference / "metrics.json").read_text())
            annotations = json.loads((run / unit / "tldr" / reference / "annotations.json").read_text())
            assert metrics["status"] == "ok" and metrics["n_total"] == 3 and 0 <= metrics["win_rate"] <= 100
            assert {a["instruction"] for a in annotations} == set(POSTS[18::2])
            assert {a["generator_1"] for a in annotations} == {"human" if reference == "human" else "reference"}
            assert all(1 <= a["preference"] <= 2 for a in annotations)  # parsed from the judge's log-probs
    # every judge request carries the post, and the human comparison carries the human summary
    judged = [r["messages"][-1]["content"] for r in judge.requests]
    assert len(judged) == 2 * 2 * 3
    assert all(any(post in text for post in POSTS[18::2]) for text in judged)
    assert sum("parrot 18 learned a word" in text for text in judged) == 2  # post 18's human summary, once per unit

    table = pd.read_csv(run / "paper" / "tldr_table.csv")
    assert sorted(zip(table["objective"], table["reference"])) == [("dpo", "human"), ("dpo", "sft"),
                                                                    ("lrml", "human"), ("lrml", "sft")]
    for _, row in table.iterrows():
        metrics = json.loads((run / f"experiments/tldr/{row['objective']}/beta0.05/seed0" / "tldr" / row["reference"]
                              / "metrics.json").read_text())
        assert row["win_rate"] == pytest.approx(metrics["win_rate"])
    assert table["win_rate paper (Lu et al. 2024)"].notna().all()  # the paper's numbers, in their own column
    assert "results/tldr/paper/tldr_table.csv" in (tmp_path / "results" / "paper" / "MANIFEST.md").read_text()
