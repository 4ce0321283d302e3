"""The candidate-objective trainer against TRL's own losses, on a tiny real model; the objective always runs in
the confined worker (sandbox.worker), as in the workflow."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from trl import DPOTrainer

from prefdisco.models import load_causal_lm, load_tokenizer
from prefdisco.objectives import library_source
from prefdisco.sandbox.runner import SandboxLimits
from prefdisco.sandbox.worker import ObjectiveWorker
from prefdisco.trainer import (
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


def train_through_worker(model_dir, dataset, code: str, opts: TrainingOptions, scratch, limits=SandboxLimits()):
    model = load_causal_lm(model_dir, torch.device("cpu"))
    with ObjectiveWorker(code, limits) as worker:
        trainer, history = train_objective(model, load_tokenizer(model_dir), dataset, worker, opts, scratch)
    return model, trainer, history


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
    ours, _, history = train_through_worker(tiny_model_dir, dataset, library_source(library_name), opts,
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
    with ObjectiveWorker(library_source("ipo")) as worker:
        trainer, _ = train_objective(model, load_tokenizer(tiny_model_dir), dataset, worker, opts, tmp_path / "run")
    assert trainer.ref_model is None
    assert len(forwards) == opts.max_steps  # one policy forward per step, nothing else


def test_top_layer_training_leaves_lower_layers_untouched(tiny_model_dir, tmp_path):
    opts = options(trainable_layers=1)
    dataset = dataset_with_reference(tiny_model_dir, opts, tmp_path)
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with ObjectiveWorker(library_source("dpo")) as worker:
        train_objective(model, load_tokenizer(tiny_model_dir), dataset, worker, opts, tmp_path / "run")
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith(("model.layers.1.", "model.norm")) for n in changed), changed


@pytest.mark.parametrize(("body", "message"), [
    ("return torch.full_like(policy_chosen_logps, float('nan')) + policy_chosen_logps", r"non-finite loss \(nan\)"),
    ("return (policy_chosen_logps - policy_rejected_logps).sum()", "return per-example losses of shape"),
    ("return policy_chosen_logps.reshape(3, -1).sum(dim=0)", "objective raised RuntimeError at line 2"),
])
def test_a_failing_objective_raises_candidate_error(tiny_model_dir, tmp_path, body, message):
    opts = options()
    dataset = dataset_with_reference(tiny_model_dir, opts, tmp_path)
    code = ("def broken(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, "
            f"reference_rejected_logps):\n    {body}\n")
    with pytest.raises(CandidateError, match=message) as failure:
        train_through_worker(tiny_model_dir, dataset, code, opts, tmp_path / "run")
    assert str(failure.value).endswith("(at step 0)")


def test_an_objective_that_hangs_in_training_is_stopped(tiny_model_dir, tmp_path):
    opts = options()
    dataset = dataset_with_reference(tiny_model_dir, opts, tmp_path)
    # Loops only on batches of 4 (training), so a sandbox probing other batch sizes could pass it.
    code = ("def stuck(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, "
            "reference_rejected_logps):\n"
            "    while policy_chosen_logps.shape[0] == 4:\n        pass\n"
            "    return -F.logsigmoid(policy_chosen_logps - policy_rejected_logps)\n")
    with pytest.raises(CandidateError, match="timed out after 1 s during a call"):
        train_through_worker(tiny_model_dir, dataset, code, opts, tmp_path / "run",
                             SandboxLimits(cpu_seconds=5, wall_seconds=1.0))


def test_the_surrogate_carries_the_objectives_loss_and_gradients(tiny_model_dir, tmp_path):
    """One step's parameter gradients through the worker equal those of the objective applied in-process on the
    trainer's own graph (the DPO library program, loaded here because it is trusted code)."""
    from prefdisco.sandbox.loader import ObjectiveContext, load_objective

    opts = options(max_steps=1, learning_rate=0.0)
    dataset = dataset_with_reference(tiny_model_dir, opts, tmp_path)
    model, trainer, history = train_through_worker(tiny_model_dir, dataset, library_source("dpo"), opts,
                                                   tmp_path / "run")
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    captured = {}

    class Direct:
        def evaluate(self, beta, pc, pr, rc, rr):
            captured["inputs"] = (pc, pr, rc, rr)
            return worker.evaluate(beta, pc, pr, rc, rr)

    with ObjectiveWorker(library_source("dpo")) as worker:
        trainer.objective = Direct()
        model.zero_grad()
        surrogate = trainer._compute_loss(model, batch, return_outputs=False)
        surrogate.backward()
    through_worker = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.zero_grad()
    completion_mask = batch["completion_mask"]
    kwargs = {k: v for k, v in batch.items() if k not in ("completion_mask", "ref_chosen_logps", "ref_rejected_logps")}
    outputs = model(**kwargs, use_cache=False, labels=batch["input_ids"].masked_fill(completion_mask == 0, -100),
                    fused_lm_head=True)
    chosen, rejected = outputs.log_probs[:, -(completion_mask.size(1) - 1):].sum(dim=1).chunk(2)
    direct = load_objective(library_source("dpo"))(ObjectiveContext(opts.beta), chosen, rejected,
                                                   batch["ref_chosen_logps"], batch["ref_rejected_logps"]).mean()
    direct.backward()
    assert surrogate.item() == pytest.approx(direct.item(), rel=1e-6)
    assert through_worker.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(through_worker[name], parameter.grad, rtol=1e-4, atol=1e-7, msg=name)
    assert history[0]["loss"] == pytest.approx(math.log(2), rel=1e-4)


def test_train_py_never_loads_candidate_code():
    """The training entry point has no path to the loader: candidate code reaches it only as text for the worker."""
    import ast
    import inspect

    import prefdisco.stages.train as train_module

    imported = {alias.name for node in ast.walk(ast.parse(inspect.getsource(train_module)))
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert {"load_objective", "define_objective", "compile_objective"}.isdisjoint(imported)
    assert "ObjectiveWorker" in imported


def test_missing_reference_logps_is_a_clear_error(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="pair p1 has no reference log-probs"):
        attach_reference_logps(PAIRS, [{"pair_id": "p0", "ref_chosen_logps": 0.0, "ref_rejected_logps": 0.0}])
