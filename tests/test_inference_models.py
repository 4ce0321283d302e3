"""One loader for a model for inference on this device: evaluation honours training.precision, as the benchmark
answers and the preferences stage do."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from prefdisco.stages.evaluate import main as evaluate_main
from prefdisco.stages.evaluate import run_evaluation
from prefdisco.io import read_json, write_json
from prefdisco.judging.answers import AnswerOptions, run_answers
from prefdisco.models import load_causal_lm, load_for_inference, precision_of
from prefdisco.trained_policy import POLICY_JSON, TRAINED_PARAMETERS

FIXTURES = Path(__file__).parent / "fixtures" / "judging"
SENTIMENT = {"max_new_tokens": 3, "eval_samples_per_prompt": 1, "batch_size": 4}


def make_policy(tiny_model_dir, folder):
    """A top-layers policy over the tiny reference, its final norm scaled (as a trained one would have moved)."""
    reference = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    folder.mkdir()
    save_file({"model.norm.weight": reference.model.norm.weight.detach() * 1.5}, str(folder / TRAINED_PARAMETERS))
    write_json(folder / POLICY_JSON, {"format": "trained_parameters", "reference": str(tiny_model_dir),
                                      "parameters": ["model.norm.weight"]})
    return folder


def test_the_loader_places_reference_and_policy_alike(tiny_model_dir, tmp_path):
    policy_dir = make_policy(tiny_model_dir, tmp_path / "policy")
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32), ("auto", torch.float32)):
        for policy in (None, policy_dir):
            model = load_for_inference(tiny_model_dir, "cpu", precision, policy)
            assert {p.dtype for p in model.parameters()} == {dtype} and not model.training
            assert precision_of(model) == ("fp32" if precision == "auto" else precision)  # auto on a CPU: fp32
    policy = load_for_inference(tiny_model_dir, "cpu", "bf16", policy_dir)
    reference = load_for_inference(tiny_model_dir, "cpu", "bf16")
    torch.testing.assert_close(policy.model.norm.weight, reference.model.norm.weight * 1.5)


def test_a_policy_copied_from_the_loaded_reference_equals_one_read_from_disk(tiny_model_dir, tmp_path):
    """evaluate reads the reference once; the policy copied from it must be the policy, and the reference intact."""
    policy_dir = make_policy(tiny_model_dir, tmp_path / "policy")
    reference = load_for_inference(tiny_model_dir, "cpu", "fp32")
    before = {name: p.detach().clone() for name, p in reference.named_parameters()}
    copied = load_for_inference(tiny_model_dir, "cpu", "fp32", policy_dir, reference=reference)
    from_disk = load_for_inference(tiny_model_dir, "cpu", "fp32", policy_dir)
    assert copied is not reference and not copied.training
    for name, parameter in from_disk.named_parameters():
        torch.testing.assert_close(dict(copied.named_parameters())[name], parameter, rtol=0, atol=0)
    for name, parameter in reference.named_parameters():
        torch.testing.assert_close(parameter, before[name], rtol=0, atol=0)
    torch.testing.assert_close(copied.model.norm.weight, reference.model.norm.weight * 1.5)


def test_evaluation_and_answers_honour_precision(tiny_model_dir, tmp_path):
    write_json(tmp_path / "reference.json", {"source": "tiny", "path": str(tiny_model_dir), "revision": None})
    policy_dir = make_policy(tiny_model_dir, tmp_path / "policy")
    trained = {"id": "g1-k0", "status": "ok", "error": None}
    for precision in ("bf16", "fp32"):
        record = run_evaluation("sentiment", SENTIMENT, tmp_path / "reference.json", ["The movie was", "I felt"], 0,
                                0.1, "cpu", policy_dir, trained, precision=precision)
        assert record["status"] == "ok" and record["precision"] == precision and record["device"] == "cpu"
        assert record["metrics"]["kl"] is not None

    _, made = run_answers("mt_bench", tmp_path / "reference.json", policy_dir, trained, FIXTURES / "mt_bench",
                          AnswerOptions(max_new_tokens=2, question_ids=[81]), "g1-k0", 0, "cpu", "bf16")
    assert made["status"] == "ok" and made["precision"] == "bf16"


def test_the_evaluate_entry_point_takes_precision(tiny_model_dir, tmp_path):
    write_json(tmp_path / "reference.json", {"source": "tiny", "path": str(tiny_model_dir), "revision": None})
    write_json(tmp_path / "heldout.json", ["The movie was"])
    evaluate_main(["--task", "sentiment", "--options", '{"max_new_tokens": 2}', "--reference",
                   str(tmp_path / "reference.json"), "--heldout", str(tmp_path / "heldout.json"), "--device", "cpu",
                   "--precision", "bf16", "--output", str(tmp_path / "eval.json")])
    assert read_json(tmp_path / "eval.json")["precision"] == "bf16"
