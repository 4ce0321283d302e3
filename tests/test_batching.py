"""Every batch a candidate sees holds the configured number of pairs: a short trailing batch is dropped, so batch
statistics (AQFL's std, DBAQL's var) never see a single pair, whatever the pair count mod the batch size."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from prefdisco.models import load_causal_lm, load_tokenizer
from prefdisco.objectives import LIBRARY, library_source
from prefdisco.sandbox.worker import ObjectiveWorker
from prefdisco.trainer import (
    TrainingOptions,
    attach_reference_logps,
    batching_record,
    compute_reference_logps,
    train_objective,
)

from preference_pairs import PAIRS  # 9 pairs

BATCH = 4  # 9 pairs at batch size 4: two full batches and a remainder of one


def options(**overrides) -> TrainingOptions:
    # epochs, not max_steps: the epoch's own end is where the short batch would come
    defaults = dict(beta=0.1, learning_rate=1e-3, batch_size=BATCH, epochs=1, max_steps=-1, seed=0, device="cpu",
                    precision="fp32", max_length=64, warmup_steps=0, lr_scheduler="constant")
    return TrainingOptions(**{**defaults, **overrides})


@pytest.fixture(scope="module")
def dataset(tiny_model_dir, tmp_path_factory):
    reference = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    records = compute_reference_logps(reference, load_tokenizer(tiny_model_dir), PAIRS, options(),
                                      tmp_path_factory.mktemp("ref"))
    return attach_reference_logps(PAIRS, records)


@pytest.mark.parametrize("name", LIBRARY)
def test_every_library_objective_trains_on_a_remainder_of_one(tiny_model_dir, dataset, tmp_path, name):
    assert len(dataset) % BATCH == 1
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    with ObjectiveWorker(library_source(name)) as worker:
        _, history = train_objective(model, load_tokenizer(tiny_model_dir), dataset, worker, options(), tmp_path)
    losses = [e["loss"] for e in history if "loss" in e]
    assert len(losses) == len(dataset) // BATCH
    assert all(loss is not None and math.isfinite(loss) for loss in losses)


def test_no_batch_is_smaller_than_the_batch_size(tiny_model_dir, dataset, tmp_path):
    seen = []

    class Counting:  # trusted test code standing in for the worker: DPO, recording each batch's size
        def evaluate(self, beta, policy_chosen, policy_rejected, reference_chosen, reference_rejected):
            seen.append(policy_chosen.shape[0])
            chosen, rejected = policy_chosen.clone().requires_grad_(), policy_rejected.clone().requires_grad_()
            losses = -F.logsigmoid(beta * (chosen - rejected - reference_chosen + reference_rejected))
            grad_chosen, grad_rejected = torch.autograd.grad(losses.mean(), (chosen, rejected))
            return losses.detach(), grad_chosen, grad_rejected

    counting = Counting()

    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    train_objective(model, load_tokenizer(tiny_model_dir), dataset, counting, options(epochs=3), tmp_path)
    assert seen == [BATCH] * (3 * (len(dataset) // BATCH))
    assert batching_record(len(dataset), BATCH, 1) == {"short_batch": "dropped", "pairs": 9, "pairs_per_step": 4,
                                                       "dropped_pairs_per_epoch": 1}


def test_fewer_pairs_than_one_batch_is_a_clear_error(tiny_model_dir, dataset, tmp_path):
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    with pytest.raises(ValueError, match=r"training.batch_size=16 x 1 process\(es\) needs at least 16 preference "
                                         r"pairs; the dataset has 9"):
        with ObjectiveWorker(library_source("dpo")) as worker:
            train_objective(model, load_tokenizer(tiny_model_dir), dataset, worker, options(batch_size=16), tmp_path)
