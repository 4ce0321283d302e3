"""Training with a candidate objective: a TRL ``DPOTrainer`` whose loss is an objective program.

TRL 1.x has no per-loss hook, so ``ObjectiveDPOTrainer`` overrides ``_compute_loss`` (the body of
``compute_loss``): one policy forward over the [chosen; rejected] batch through TRL's fused LM head, then the
candidate objective on the summed log-probs. Reference log-probs are never computed here: they come as dataset
columns from the run's shared ``reference_logps`` stage, computed once by the same class in reference mode.

The candidate's code never runs in this process. A confined worker (sandbox.worker) returns the per-example
losses and d(mean loss)/d(policy log-probs); the trainer applies them through a surrogate whose value is the
objective's mean loss and whose parameter gradients are exactly the objective's.
"""

from __future__ import annotations

import logging
import math
from unittest import mock
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import torch
from datasets import Dataset
from torch.utils.data import DataLoader

# Checks the installed torch, transformers and TRL first: outside the supported ranges the TRL imports below fail
# obscurely, or the trainer trains differently.
from . import versions  # noqa: F401
from trl import DPOConfig, DPOTrainer
from trl.trainer import dpo_trainer as dpo_trainer_module
from trl.trainer.utils import add_fused_lm_head

from .errors import CandidateError
from .models import resolve_device, resolve_precision
from .shared_layers import FrozenStates, layers_from

log = logging.getLogger(__name__)

REFERENCE_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")


__all__ = ["CandidateError", "ObjectiveDPOTrainer", "ObjectiveEvaluator", "TrainingOptions", "train_objective"]


class ObjectiveEvaluator(Protocol):
    """What the trainer asks of an objective: per-example losses and the gradients of their mean with respect to
    the two policy vectors, as float64 CPU tensors of shape (B,); raises CandidateError when the objective fails.
    For candidate code this is always the confined worker (sandbox.worker.ObjectiveWorker)."""

    def evaluate(self, beta: float, policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
                 reference_chosen: torch.Tensor, reference_rejected: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


@dataclass
class TrainingOptions:
    beta: float = 0.1
    learning_rate: float = 5e-6
    batch_size: int = 8  # preference pairs per device step
    gradient_accumulation_steps: int = 1
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    warmup_steps: int = 0
    lr_scheduler: str = "linear"
    max_length: int = 512
    trainable_layers: int | None = None  # train only the top N decoder layers (None: full fine-tune)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    gradient_checkpointing: bool = False
    logging_steps: int = 1
    distributed: str = "deepspeed_zero3"  # strategy of a job with several GPUs: prefdisco/accelerate/<name>.yaml
    eval_pairs: int = 0  # pairs held out of training and scored every eval_steps (evaluation loss, Fig. 7); 0: none
    eval_steps: int = 16


class ObjectiveDPOTrainer(DPOTrainer):
    """DPOTrainer that applies ``objective``, an :class:`ObjectiveEvaluator` (the confined worker).

    With ``objective=None`` it is in reference mode: it only computes reference log-probs (see
    :meth:`reference_logps`), so that tokenisation, truncation and summation match training exactly.
    """

    def __init__(self, *args, objective: ObjectiveEvaluator | None = None, frozen_states: FrozenStates | None = None,
                 **kwargs):
        self.objective = objective
        self.frozen_states = frozen_states  # see _policy_log_probs
        self.frozen_steps = 0
        # Two pieces of TRL's set-up this trainer never uses, skipped: with precompute_ref_log_probs TRL hashes
        # every weight to name its own log-prob cache (seconds for a small model, a minute for a 7B one), and
        # its fused LM head computes entropy, mean logits and top-1 hits on every forward for metrics that
        # _compute_loss below does not log.
        with (
            mock.patch.object(dpo_trainer_module, "hash_module", lambda module: "precomputed-by-prefdisco"),
            mock.patch.object(dpo_trainer_module, "add_fused_lm_head", _log_probs_only_lm_head),
        ):
            super().__init__(*args, **kwargs)

    def _precompute_ref_logps(self, dataset: Dataset, name: str, batch_size: int) -> Dataset:
        # TRL would run the reference here; the columns come precomputed from the shared stage instead.
        missing = [c for c in REFERENCE_COLUMNS if c not in dataset.column_names]
        if missing and self.objective is not None:
            raise ValueError(
                f"{name} dataset has no {missing} columns: reference log-probs must be computed once by the "
                "reference_logps stage and attached before training"
            )
        return dataset

    @torch.no_grad()
    def reference_logps(self, batch_size: int, states: FrozenStates | None = None) -> tuple[list[float], list[float]]:
        """Log-probs of the training dataset's chosen and rejected completions under the (untrained) model; with
        ``states``, the hidden states its frozen bottom layers compute are kept there too, from the same pass."""
        dataset = self.train_dataset.select_columns(["prompt_ids", "chosen_ids", "rejected_ids"])
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=self.data_collator, shuffle=False)
        self.model.eval()
        chosen, rejected = [], []
        for batch in loader:
            batch = self._prepare_inputs(batch)
            recorder = states.recorder(self.accelerator.unwrap_model(self.model)) if states is not None else None
            try:
                c, r = self.compute_ref_log_probs(self.model, batch)
            finally:
                if recorder is not None:
                    recorder.close()
            if recorder is not None:
                states.add(batch["input_ids"], batch["attention_mask"], recorder.joined())
            chosen += c.float().cpu().tolist()
            rejected += r.float().cpu().tolist()
        return chosen, rejected

    def _compute_loss(self, model, inputs, return_outputs):
        if self.objective is None:
            raise RuntimeError("ObjectiveDPOTrainer in reference mode cannot train: no objective was given")
        mode = "train" if self.model.training else "eval"
        completion_mask = inputs["completion_mask"]
        model_kwargs = {k: v for k, v in inputs.items() if k not in ("completion_mask", *REFERENCE_COLUMNS)}
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = self._policy_log_probs(model, model_kwargs, labels)
        seq_len = completion_mask.size(1) - 1
        logps = outputs.log_probs[:, -seq_len:].sum(dim=1)
        chosen_logps, rejected_logps = logps.chunk(2, dim=0)
        ref_chosen = inputs["ref_chosen_logps"].to(chosen_logps)
        ref_rejected = inputs["ref_rejected_logps"].to(rejected_logps)

        failure = None
        try:
            losses, grad_chosen, grad_rejected = self.objective.evaluate(
                self.beta, chosen_logps.detach(), rejected_logps.detach(), ref_chosen, ref_rejected)
        except CandidateError as error:
            failure = f"{error} (at step {self.state.global_step})"
        failure = self._failure_anywhere(failure)
        if failure is not None:
            raise CandidateError(failure)
        # The surrogate: its gradient with respect to the policy log-probs is the objective's, so the parameter
        # gradients are too; subtracting its detached self makes its value exactly 0, so the loss TRL logs and
        # backpropagates carries the objective's own mean loss.
        grad_chosen, grad_rejected = grad_chosen.to(chosen_logps), grad_rejected.to(rejected_logps)
        surrogate = (grad_chosen * chosen_logps).sum() + (grad_rejected * rejected_logps).sum()
        loss = losses.mean().to(surrogate) + (surrogate - surrogate.detach())

        chosen_rewards = self.beta * (chosen_logps - ref_chosen).detach()
        rejected_rewards = self.beta * (rejected_logps - ref_rejected).detach()
        gather = self.accelerator.gather_for_metrics
        metrics = self._metrics[mode]
        metrics["rewards/chosen"].append(gather(chosen_rewards).mean().item())
        metrics["rewards/rejected"].append(gather(rejected_rewards).mean().item())
        metrics["rewards/accuracies"].append(gather((chosen_rewards > rejected_rewards).float()).mean().item())
        metrics["rewards/margins"].append(gather(chosen_rewards - rejected_rewards).mean().item())
        metrics["logps/chosen"].append(gather(chosen_logps.detach()).mean().item())
        metrics["logps/rejected"].append(gather(rejected_logps.detach()).mean().item())
        return (loss, outputs) if return_outputs else loss

    def _policy_log_probs(self, model, model_kwargs: dict, labels: torch.Tensor):
        """The policy's per-token log-probs of the batch (TRL's fused LM head). A policy that trains only its top
        layers starts from the states its frozen bottom computes, recorded once by the reference_logps stage (for
        training steps and for the held-out pairs scored between them alike): the same numbers and the same
        gradients, without the bottom layers' forward pass at every step."""
        states = None
        if self.frozen_states is not None and self.accelerator.num_processes == 1:
            states = self.frozen_states.batch(model_kwargs["input_ids"], model_kwargs["attention_mask"])
        if states is None:
            return model(**model_kwargs, use_cache=False, labels=labels, fused_lm_head=True)
        self.frozen_steps += self.model.training  # training steps only: what train.json reports
        kwargs = {k: v for k, v in model_kwargs.items() if k != "input_ids"}
        with layers_from(self.accelerator.unwrap_model(model), self.frozen_states.layer):
            return model(inputs_embeds=states.to(self.accelerator.unwrap_model(model).dtype), **kwargs,
                         use_cache=False, labels=labels, fused_lm_head=True)

    def _failure_anywhere(self, failure: str | None) -> str | None:
        """With several processes, all of them stop when the objective fails in any one (a NaN can show up in
        one shard only): a process that raised alone would leave the others waiting for it forever."""
        if self.accelerator.num_processes == 1:
            return failure
        failed = torch.tensor([failure is not None], dtype=torch.float32, device=self.accelerator.device)
        failed_anywhere = self.accelerator.gather(failed).sum().item() > 0  # every process takes part
        if failure is None and failed_anywhere:
            return "the objective failed in another training process"
        return failure


def _log_probs_only_lm_head(model, **kwargs) -> None:
    add_fused_lm_head(model, **{**kwargs, "outputs": ("log_probs",)})


def dpo_config(options: TrainingOptions, output_dir: Path, threads: int | None = None) -> DPOConfig:
    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)
    return DPOConfig(
        output_dir=str(output_dir),
        beta=options.beta,
        learning_rate=options.learning_rate,
        per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        warmup_steps=options.warmup_steps,
        lr_scheduler_type=options.lr_scheduler,
        max_length=options.max_length,
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=options.batch_size,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device.type == "cpu",
        seed=options.seed,
        data_seed=options.seed,
        logging_steps=options.logging_steps,
        # The held-out slice's loss and reward accuracy, logged into the same history as the training entries.
        **({"eval_strategy": "steps", "eval_steps": options.eval_steps, "per_device_eval_batch_size": options.batch_size}
           if options.eval_pairs > 0 else {}),
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        # Every batch a candidate sees holds batch_size pairs: a short trailing batch (one pair, say) makes batch
        # statistics (std, var) NaN or wild, so an objective like AQFL "failed" or not by pair count mod batch
        # size. Dropped rather than merged into the previous batch: a merged batch of up to 2x the configured
        # size could exceed the memory the batch size was chosen for, and dropping is the data loader's own path
        # (also across processes). The loss is under one batch per epoch, and as the data order is seeded by
        # training.seed it is the same pairs for every candidate of a run; train.json records the count.
        dataloader_drop_last=True,
        disable_tqdm=True,
        # Only named when on: transformers 5 renamed the option and warns about the old name.
        **({"gradient_checkpointing": True} if options.gradient_checkpointing else {}),
    )


def trainable_parameter_names(model, trainable_layers: int | None) -> list[str] | None:
    """Names of the parameters that training changes: the top ``trainable_layers`` decoder blocks and the final
    norm; None for a full fine-tune."""
    if trainable_layers is None:
        return None
    layers = _decoder_layers(model)
    if not 0 < trainable_layers <= len(layers):
        raise ValueError(f"training.trainable_layers={trainable_layers}, but the model has {len(layers)} layers")
    trained = {id(p) for layer in layers[-trainable_layers:] for p in layer.parameters()}
    final_norm = getattr(model.base_model, "norm", None) or getattr(model.base_model, "ln_f", None)
    if final_norm is not None:
        trained |= {id(p) for p in final_norm.parameters()}
    return [name for name, parameter in model.named_parameters() if id(parameter) in trained]


def freeze_below_top_layers(model, trainable_layers: int | None) -> None:
    """Train only the top ``trainable_layers`` decoder blocks and the final norm (a CPU budget setting)."""
    trained = trainable_parameter_names(model, trainable_layers)
    if trained is None:
        return
    trained = set(trained)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in trained)


def _decoder_layers(model):
    base = model.base_model
    for attribute in ("layers", "h", "blocks"):
        layers = getattr(base, attribute, None)
        if isinstance(layers, torch.nn.ModuleList):
            return layers
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__} to apply training.trainable_layers")


def attach_reference_logps(pairs: list[dict], reference_logps: list[dict]) -> Dataset:
    """The training dataset: preference pairs with their precomputed reference log-probs, matched by pair id."""
    by_id = {r["pair_id"]: r for r in reference_logps}
    rows = []
    for pair in pairs:
        reference = by_id.get(pair["pair_id"])
        if reference is None:
            raise ValueError(f"pair {pair['pair_id']} has no reference log-probs: rerun the reference_logps stage")
        rows.append({"prompt": pair["prompt"], "chosen": pair["chosen"], "rejected": pair["rejected"],
                     "ref_chosen_logps": reference["ref_chosen_logps"], "ref_rejected_logps": reference["ref_rejected_logps"]})
    return Dataset.from_list(rows)


def compute_reference_logps(model, tokenizer, pairs: list[dict], options: TrainingOptions, scratch_dir: Path,
                            states: FrozenStates | None = None) -> list[dict]:
    """Reference log-probs of every pair, through the trainer's own tokenisation and summation; with ``states``
    (:meth:`FrozenStates.for_top_layers`), the frozen bottom layers' states of every sequence are kept there."""
    dataset = Dataset.from_list([{"pair_id": p["pair_id"], "prompt": p["prompt"], "chosen": p["chosen"],
                                  "rejected": p["rejected"]} for p in pairs])
    tokenizer.padding_side = "right"
    options = replace(options, eval_pairs=0)  # no training here: an evaluation schedule would want an eval set
    trainer = ObjectiveDPOTrainer(model=model, args=dpo_config(options, scratch_dir), train_dataset=dataset,
                                  processing_class=tokenizer, objective=None)
    with trainer.accelerator.autocast():  # training's mixed precision (bf16/fp16 forward), so step 0 matches
        chosen, rejected = trainer.reference_logps(options.batch_size, states)
    pair_ids = trainer.train_dataset["pair_id"]
    dropped = sorted(set(p["pair_id"] for p in pairs) - set(pair_ids))
    if dropped:  # every training job would drop them too, and then find no reference log-probs for them
        raise ValueError(f"{len(dropped)} pairs ({', '.join(dropped[:5])}) have a prompt of at least "
                         f"training.max_length={options.max_length} tokens: the preferences stage drops those; "
                         "rebuild the preference data with this training.max_length")
    return [{"pair_id": i, "ref_chosen_logps": c, "ref_rejected_logps": r} for i, c, r in zip(pair_ids, chosen, rejected)]


def train_objective(model, tokenizer, dataset: Dataset, objective: ObjectiveEvaluator, options: TrainingOptions,
                    scratch_dir: Path, frozen_states: FrozenStates | None = None) -> tuple[ObjectiveDPOTrainer, list[dict]]:
    """Fine-tune ``model`` in place with ``objective`` (the confined worker); returns the trainer and its log history.
    ``frozen_states``: the reference_logps stage's states of the frozen bottom layers, used where they fit.

    Raises CandidateError when the objective fails; anything else is a fault of the workflow and propagates.
    """
    freeze_below_top_layers(model, options.trainable_layers)
    tokenizer.padding_side = "right"
    eval_dataset = None
    if options.eval_pairs > 0:  # the last pairs, never trained on: a fixed held-out slice for every objective
        if options.eval_pairs >= len(dataset):
            raise ValueError(f"training.eval_pairs={options.eval_pairs} leaves none of the {len(dataset)} pairs to train on")
        cut = len(dataset) - options.eval_pairs
        dataset, eval_dataset = dataset.select(range(cut)), dataset.select(range(cut, len(dataset)))
    config = dpo_config(options, scratch_dir)
    per_step = options.batch_size * config.world_size
    if len(dataset) < per_step:  # with short batches dropped, there would be no step at all
        raise ValueError(f"training.batch_size={options.batch_size} x {config.world_size} process(es) needs at least "
                         f"{per_step} preference pairs; the dataset has {len(dataset)}")
    if frozen_states is not None and not frozen_states.usable_for(model, options.trainable_layers):
        frozen_states = None
    trainer = ObjectiveDPOTrainer(model=model, args=config, train_dataset=dataset, eval_dataset=eval_dataset,
                                  processing_class=tokenizer, objective=objective, frozen_states=frozen_states)
    trainer.train()
    history = [dict(entry) for entry in trainer.state.log_history]
    for entry in history:
        for key, value in entry.items():
            if isinstance(value, float) and not math.isfinite(value):
                entry[key] = None
    return trainer, history


def batching_record(n_pairs: int, batch_size: int, processes: int) -> dict:
    """What train.json says about batching: the short trailing batch of each epoch is dropped (see dpo_config)."""
    per_step = batch_size * processes
    return {"short_batch": "dropped", "pairs": n_pairs, "pairs_per_step": per_step,
            "dropped_pairs_per_epoch": n_pairs % per_step}


def summarise_history(history: list[dict]) -> dict:
    """train.json's ``metrics`` (and the archive's ``training``): the mean over the epoch's logged training steps of
    each per-step metric (loss, grad_norm, rewards/*, logps/*), with the step count and the runtime.

    One step's values are one batch (a handful of pairs on a CPU run): too noisy to describe a run. The whole
    per-step log stays in train.json's ``history``. A value that was not finite (logged as None) is left out of
    its mean; ``non_finite`` counts those per metric.
    """
    steps = [entry for entry in history if "loss" in entry]  # training steps; eval entries log "eval_*" keys
    values: dict[str, list] = {}
    for entry in steps:
        for key, value in entry.items():
            if key in ("loss", "grad_norm") or key.startswith(("rewards/", "logps/")):
                values.setdefault(key, []).append(value)
    summary: dict = {}
    non_finite = {}
    for key, series in values.items():
        finite = [float(v) for v in series if v is not None and math.isfinite(v)]
        summary[key] = math.fsum(finite) / len(finite) if finite else None
        if len(finite) < len(series):
            non_finite[key] = len(series) - len(finite)
    summary["logged_steps"] = len(steps)
    summary["steps"] = max((e.get("step", 0) for e in history), default=0)
    summary["epoch"] = max((e.get("epoch", 0) for e in history), default=0)
    final = next((e for e in reversed(history) if "train_runtime" in e), {})
    for key in ("train_runtime", "train_samples_per_second"):
        summary[key] = final.get(key)
    if non_finite:
        summary["non_finite"] = non_finite
    return summary
