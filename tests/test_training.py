"""The candidate-objective trainer against TRL's own losses, on a tiny real model."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from trl import DPOTrainer

from prefdisco.models import load_causal_lm, load_tokenizer
from prefdisco.objectives import library_source
from prefdisco.sandbox.loader import load_objective
from prefdisco.training import (
    CandidateError,
    TrainingOptions,
    attach_reference_logps,
    compute_reference_logps,
    dpo_config,
    train_objective,
)

PAIRS = [
    {"pair_id": f"p{i}", "prompt": prompt, "chosen": chosen, "rejected": rejected}
    for i, (prompt, chosen, rejected) in enumerate([
        ("The film opens with", " a warm and gentle scene.", " a dull, grey shot."),
        ("I watched it twice and", " enjoyed it more each time.", " regretted it."),
        ("The soundtrack", " lifts every moment.", " grates on the ear throughout the film."),
        ("Halfway through,", " I was smiling.", " I left."),
        ("The lead actor", " carries the story with ease.", " seems lost."),
        ("Its ending", " made the whole audience cheer.", " fell flat."),
        ("My friends said", " it was a delight.", " it was a waste of an evening."),
        ("The second act", " is a joy.", " drags on and on without purpose."),
    ])
]


def options(**overrides) -> TrainingOptions:
    defaults = dict(beta=0.1, learning_rate=1e-3, batch_size=4, max_steps=4, seed=0, device="cpu",
                    precision="fp32", max_length=64, warmup_steps=0, lr_scheduler="constant")
    return TrainingOptions(**{**defaults, **overrides})


def dataset_with_reference(model_dir, opts, tmp_path) -> Dataset:
    reference = load_causal_lm(model_dir, torch.device("cpu"))
    records = compute_reference_logps(reference, load_tokenizer(model_dir), PAIRS, opts, tmp_path / "ref")
    return attach_reference_logps(PAIRS, records)


def test_reference_logps_are_the_summed_completion_logprobs(tiny_model_dir, tmp_path):
    opts = options()
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    tokenizer = load_tokenizer(tiny_model_dir)
    records = compute_reference_logps(model, tokenizer, PAIRS, opts, tmp_path)
    assert [r["pair_id"] for r in records] == [p["pair_id"] for p in PAIRS]

    # Independent computation: TRL appends EOS to completions; sum log p(completion tokens | prompt).
    pair, record = PAIRS[2], records[2]
    prompt_ids = tokenizer(pair["prompt"])["input_ids"]
    full_ids = tokenizer(pair["prompt"] + pair["chosen"] + tokenizer.eos_token)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([full_ids])).logits[0, :-1]
    token_logps = torch.log_softmax(logits, -1).gather(-1, torch.tensor(full_ids[1:]).unsqueeze(-1)).squeeze(-1)
    expected = token_logps[len(prompt_ids) - 1 :].sum().item()
    assert record["ref_chosen_logps"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(("library_name", "trl_loss", "beta"), [("dpo", "sigmoid", 0.1), ("slic", "hinge", 0.1),
                                                                ("lrml", "discopop", 0.05)])
def test_library_objective_trains_exactly_like_trl_builtin(tiny_model_dir, tmp_path, library_name, trl_loss, beta):
    """Same data, seed and steps: our trainer with the library objective and precomputed reference log-probs
    follows TRL's built-in loss with a live reference model step for step (LRML against loss_type="discopop",
    whose tau 0.05 with beta 0.05 is the paper's LRML)."""
    opts = options(beta=beta)
    dataset = dataset_with_reference(tiny_model_dir, opts, tmp_path)
    tokenizer = load_tokenizer(tiny_model_dir)
    ours = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    _, history = train_objective(ours, tokenizer, dataset, load_objective(library_source(library_name)), opts,
                                 tmp_path / "ours")

    stock = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    config = dpo_config(opts, tmp_path / "stock")
    config.precompute_ref_log_probs = False
    config.loss_type = [trl_loss]
    tokenizer.padding_side = "right"
    plain = Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in PAIRS])
    trainer = DPOTrainer(model=stock, args=config, train_dataset=plain, processing_class=tokenizer)
    trainer.train()
    stock_losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    our_losses = [e["loss"] for e in history if "loss" in e]

    assert len(our_losses) == len(stock_losses) == opts.max_steps
    assert our_losses == pytest.approx(stock_losses, rel=1e-4, abs=1e-6)
    if library_name == "dpo":
        assert our_losses[0] == pytest.approx(math.log(2), rel=1e-4)  # policy == reference at step 0
    for (name, p), q in zip(ours.named_parameters(), stock.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_training_runs_no_reference_forward(tiny_model_dir, tmp_path):
    opts = options()
    dataset = dataset_with_reference(tiny_model_dir, opts, tmp_path)
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    forwards = []
    model.register_forward_hook(lambda *_: forwards.append(1))
    trainer, _ = train_objective(model, load_tokenizer(tiny_model_dir), dataset, load_objective(library_source("ipo")),
                                 opts, tmp_path / "run")
    assert trainer.ref_model is None
    assert len(forwards) == opts.max_steps  # one policy forward per step, nothing else


def test_top_layer_training_leaves_lower_layers_untouched(tiny_model_dir, tmp_path):
    opts = options(trainable_layers=1)
    dataset = dataset_with_reference(tiny_model_dir, opts, tmp_path)
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_objective(model, load_tokenizer(tiny_model_dir), dataset, load_objective(library_source("dpo")), opts,
                    tmp_path / "run")
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith(("model.layers.1.", "model.norm")) for n in changed), changed


@pytest.mark.parametrize(("body", "message"), [
    ("return torch.full_like(policy_chosen_logps, float('nan')) + policy_chosen_logps", "non-finite loss"),
    ("return (policy_chosen_logps - policy_rejected_logps).sum()", "expected per-example losses"),
    ("return policy_chosen_logps.reshape(3, -1).sum(dim=0)", "objective raised RuntimeError"),
])
def test_a_failing_objective_raises_candidate_error(tiny_model_dir, tmp_path, body, message):
    opts = options()
    dataset = dataset_with_reference(tiny_model_dir, opts, tmp_path)
    code = ("def broken(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, "
            f"reference_rejected_logps):\n    {body}\n")
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    with pytest.raises(CandidateError, match=message):
        train_objective(model, load_tokenizer(tiny_model_dir), dataset, load_objective(code), opts, tmp_path / "run")


def test_an_objective_that_hangs_in_training_is_stopped(tiny_model_dir, tmp_path):
    opts = options(objective_timeout_seconds=1.0)
    dataset = dataset_with_reference(tiny_model_dir, opts, tmp_path)
    # Loops only on batches of 4 (training), so a sandbox probing other batch sizes could pass it.
    code = ("def stuck(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, "
            "reference_rejected_logps):\n"
            "    while policy_chosen_logps.shape[0] == 4:\n        pass\n"
            "    return -F.logsigmoid(policy_chosen_logps - policy_rejected_logps)\n")
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    with pytest.raises(CandidateError, match="exceeded 1 s"):
        train_objective(model, load_tokenizer(tiny_model_dir), dataset, load_objective(code), opts, tmp_path / "run")


def test_an_objective_reaching_the_os_in_training_is_stopped(tiny_model_dir, tmp_path):
    """As if code had slipped past the policy and the loader: the audit hook still blocks it in the trainer."""
    opts = options()
    dataset = dataset_with_reference(tiny_model_dir, opts, tmp_path)
    stolen = []

    def exfiltrating(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
        stolen.append(open("/etc/hostname").read())
        return -F.logsigmoid(self.beta * (policy_chosen_logps - policy_rejected_logps))

    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    with pytest.raises(CandidateError, match=r"SandboxViolation: open\('/etc/hostname'\) is not permitted"):
        train_objective(model, load_tokenizer(tiny_model_dir), dataset, exfiltrating, opts, tmp_path / "run")
    assert stolen == []


def test_missing_reference_logps_is_a_clear_error(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="pair p1 has no reference log-probs"):
        attach_reference_logps(PAIRS, [{"pair_id": "p0", "ref_chosen_logps": 0.0, "ref_rejected_logps": 0.0}])
