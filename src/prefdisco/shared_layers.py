"""The bottom decoder layers a top-layers policy shares with its reference, and running only the layers above them.

A policy trained with ``training.trainable_layers: k`` is the reference with its top k layers changed: on the
policy's own samples, the bottom layers of the reference compute exactly what the policy's computed while sampling.
Keeping the hidden state that enters the first changed layer, the reference's log-probabilities for KL need only its
top layers, a fraction of a whole forward pass.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

# Architectures whose decoder takes ``inputs_embeds`` as the hidden state entering its first layer, unscaled, and
# whose layers all attend the same way (no per-layer sliding windows): the layer stack can be cut anywhere. Gemma,
# for one, rescales ``inputs_embeds`` and so is not here; every other model takes the whole forward pass.
_CUTTABLE = {"llama"}


def decoder_layers(model):
    """The model's decoder layer list, or None for an architecture that cannot be cut (see ``_CUTTABLE``)."""
    if getattr(model.config, "model_type", None) not in _CUTTABLE:
        return None
    return model.model.layers


def shared_bottom_layers(policy, reference) -> int:
    """How many bottom decoder layers (embeddings included) the two models share tensor for tensor; 0 if none, if
    the architecture cannot be cut, or if the models are one and the same."""
    if reference is None or policy is reference:
        return 0
    policy_layers, reference_layers = decoder_layers(policy), decoder_layers(reference)
    if policy_layers is None or reference_layers is None or len(policy_layers) != len(reference_layers):
        return 0
    if not _same(policy.model.embed_tokens, reference.model.embed_tokens):
        return 0
    shared = 0
    for mine, theirs in zip(policy_layers, reference_layers):
        if not _same(mine, theirs):
            break
        shared += 1
    return shared if shared < len(policy_layers) else 0  # all shared: the same model, nothing to cut


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pairs = list(zip(a.state_dict().values(), b.state_dict().values()))
    return len(pairs) == len(a.state_dict()) == len(b.state_dict()) and all(
        x.shape == y.shape and (x.data_ptr() == y.data_ptr() or torch.equal(x, y)) for x, y in pairs)


class HiddenStateRecorder:
    """Records the hidden state entering decoder layer ``layer`` on every forward pass (a generate call's prefill,
    then one position per new token), to be joined along the sequence afterwards."""

    def __init__(self, model, layer: int):
        self.states: list[torch.Tensor] = []
        self._handle = decoder_layers(model)[layer].register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        self.states.append(hidden.detach())

    def joined(self) -> torch.Tensor:
        """(B, positions, H): every position the model was run on, in order. A pass over fewer rows (a prefill
        shared by the samples of each prompt, see sampling) is repeated for each row's samples."""
        rows = max(s.shape[0] for s in self.states)
        return torch.cat([s.repeat_interleave(rows // s.shape[0], dim=0) for s in self.states], dim=1)

    def close(self) -> None:
        self._handle.remove()


@contextmanager
def layers_from(model, first_layer: int):
    """Within the block, the model's decoder runs only its layers from ``first_layer`` up: its ``inputs_embeds`` are
    then the hidden states entering that layer. Embedding lookup, final norm and LM head are unchanged."""
    base, layers = model.model, model.model.layers
    base.layers = layers[first_layer:]
    try:
        yield model
    finally:
        base.layers = layers


def run_top_layers(model, first_layer: int, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The decoder's last hidden state (final norm applied) from ``hidden``, the state entering ``first_layer``, for
    right-padded rows (positions 0..n-1)."""
    with layers_from(model, first_layer):
        positions = torch.arange(hidden.shape[1], device=hidden.device).expand(hidden.shape[0], -1)
        return model.model(inputs_embeds=hidden, attention_mask=attention_mask, position_ids=positions,
                           use_cache=False).last_hidden_state


@torch.no_grad()
def top_layers_logps(reference, first_layer: int, hidden: list[torch.Tensor], prompt_lengths: list[int],
                     completions: list[list[int]]) -> torch.Tensor:
    """Sum of the reference's log-probabilities of each completion, from the hidden states entering layer
    ``first_layer`` at positions 0..len(prompt)+len(completion)-2 (one (positions, H) tensor per sequence)."""
    device = next(reference.parameters()).device
    width = max(h.shape[0] for h in hidden)
    batch = torch.zeros((len(hidden), width, hidden[0].shape[-1]), dtype=hidden[0].dtype)
    attention = torch.zeros((len(hidden), width), dtype=torch.long)
    for row, h in enumerate(hidden):  # right padding: positions are those of the unpadded sequence
        batch[row, : h.shape[0]] = h
        attention[row, : h.shape[0]] = 1
    last = run_top_layers(reference, first_layer, batch.to(device), attention.to(device))
    # The state at position p predicts the token at p + 1: completion tokens sit at start .. start+len-1. One lm_head
    # call over every completion position: a call per row would stream the vocabulary matrix once per row.
    rows = [torch.full((len(tokens),), row) for row, tokens in enumerate(completions)]
    columns = [torch.arange(start - 1, start - 1 + len(tokens)) for start, tokens in zip(prompt_lengths, completions)]
    if not rows:
        return torch.zeros(0)
    states = last[torch.cat(rows).to(device), torch.cat(columns).to(device)]
    targets = torch.tensor([t for tokens in completions for t in tokens], device=device)
    token_logps = torch.log_softmax(reference.lm_head(states).float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)
    return torch.zeros(len(completions)).index_add_(0, torch.cat(rows), token_logps.cpu())


class FrozenStates:
    """The hidden state entering decoder layer ``layer`` of every training sequence (prompt + completion, tokenised
    and truncated as the trainer does), under the reference.

    A policy that trains only the layers from ``layer`` up computes exactly these in its frozen bottom, at every step
    of every candidate and seed. The reference_logps stage records them once, in the same pass that computes the
    reference log-probs; a training job then runs only its top layers (trainer.ObjectiveDPOTrainer). Keyed by the
    token sequence, so a row is found whatever batch it lands in (right padding keeps its positions).
    """

    MAX_BYTES = 2 << 30  # beyond this (long sequences, a large model) training takes whole forward passes instead

    def __init__(self, layer: int, layers: int) -> None:
        self.layer, self.layers = layer, layers
        self.by_sequence: dict[tuple[int, ...], torch.Tensor] = {}
        self.bytes = 0
        self.skipped: str | None = None

    @classmethod
    def for_top_layers(cls, model, trainable_layers: int | None) -> "FrozenStates":
        """An empty store for a policy training its top ``trainable_layers``; one that records nothing when the
        whole model trains or the architecture cannot be cut."""
        layers = decoder_layers(model)
        skipped = (f"{model.config.model_type} layers cannot be run apart" if layers is None
                   else "the whole model trains" if trainable_layers is None or trainable_layers >= len(layers)
                   else None)
        if skipped is not None:
            store = cls(0, 0 if layers is None else len(layers))
            store.skipped = skipped
            return store
        return cls(len(layers) - trainable_layers, len(layers))

    @property
    def recording(self) -> bool:
        return self.layer > 0 and self.skipped is None

    def recorder(self, model) -> HiddenStateRecorder | None:
        return HiddenStateRecorder(model, self.layer) if self.recording else None

    def add(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, hidden: torch.Tensor) -> None:
        """Keep each row's states (right-padded rows of one forward pass)."""
        for ids, mask, states in zip(input_ids.tolist(), attention_mask.tolist(), hidden):
            length = sum(mask)
            row = states[:length].detach().cpu().clone()
            self.bytes += row.numel() * row.element_size()
            if self.bytes > self.MAX_BYTES:
                self.by_sequence.clear()
                self.skipped = f"more than {self.MAX_BYTES >> 20} MB of states"
                return
            self.by_sequence[tuple(ids[:length])] = row

    def batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """The states of a right-padded batch, zero at padding; None if any row is unknown."""
        rows = []
        for ids, length in zip(input_ids.tolist(), attention_mask.sum(dim=1).tolist()):
            row = self.by_sequence.get(tuple(ids[:length]))
            if row is None:
                return None
            rows.append(row)
        if not rows:
            return None
        out = rows[0].new_zeros((len(rows), input_ids.shape[1], rows[0].shape[-1]))
        for index, row in enumerate(rows):
            out[index, : row.shape[0]] = row
        return out.to(input_ids.device)

    def usable_for(self, model, trainable_layers: int | None) -> bool:
        """Whether a policy training its top ``trainable_layers`` of ``model`` can start from these states."""
        layers = decoder_layers(model)
        return (bool(self.by_sequence) and layers is not None and trainable_layers is not None
                and len(layers) == self.layers and self.layer == len(layers) - trainable_layers)

    def save(self, path) -> None:
        sequences = list(self.by_sequence)
        torch.save({"layer": self.layer, "layers": self.layers, "skipped": self.skipped,
                    "sequences": [list(s) for s in sequences],
                    "states": [self.by_sequence[s] for s in sequences]}, path)

    @classmethod
    def load(cls, path) -> "FrozenStates":
        data = torch.load(path, weights_only=True)
        store = cls(data["layer"], data["layers"])
        store.skipped = data["skipped"]
        store.by_sequence = {tuple(s): t for s, t in zip(data["sequences"], data["states"])}
        return store
