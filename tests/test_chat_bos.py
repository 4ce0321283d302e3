"""The chat task's KL sampling and the benchmark answers tokenise a rendered chat template the same way: the
template's own BOS, never a second one from the tokenizer (zephyr-7b-gemma's template emits BOS)."""

from __future__ import annotations

import pytest
import torch

from prefdisco.judging.answers import generate_replies
from prefdisco.models import load_causal_lm, load_tokenizer
from prefdisco.tasks import chat

CONVERSATIONS = [
    [{"role": "user", "content": "Name a colour."}],
    [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"},
     {"role": "user", "content": "How long is a day on Mars?"}],
]


@pytest.fixture
def bos_template_tokenizer(tiny_model_dir):
    """The tiny model's tokenizer made Gemma-like: it adds BOS itself, and its chat template also emits BOS."""
    tokenizer = load_tokenizer(tiny_model_dir)
    tokenizer.bos_token = "<|endoftext|>"  # a BOS of its own, distinct from the template's <|im_start|> markers
    tokenizer.add_bos_token = True
    tokenizer.chat_template = "{{ bos_token }}" + tokenizer.chat_template
    assert tokenizer("x")["input_ids"][0] == tokenizer.bos_token_id  # the tokenizer would add one
    return tokenizer


def prompts_seen_by(model, run) -> list[list[int]]:
    """The prompt token ids of every generate call: the unpadded rows of its first forward (the whole prompt)."""
    forwards = []
    handle = model.register_forward_pre_hook(
        lambda module, args, kwargs: forwards.append((kwargs["input_ids"], kwargs["attention_mask"])), with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    prompts = []
    for input_ids, mask in forwards:
        if input_ids.shape[1] > 1:  # later decoding steps see one new token each
            prompts += [[t for t, m in zip(row, keep) if m] for row, keep in zip(input_ids.tolist(), mask.tolist())]
    return prompts


def test_kl_sampling_and_answers_see_one_bos(tiny_model_dir, bos_template_tokenizer):
    tokenizer = bos_template_tokenizer
    model = load_causal_lm(tiny_model_dir, torch.device("cpu"))
    expected = [tokenizer(tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True),
                          add_special_tokens=False)["input_ids"] for c in CONVERSATIONS]
    assert all(ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1 for ids in expected)

    options = chat.to_options({"max_new_tokens": 2, "eval_samples_per_prompt": 1, "batch_size": 8})
    sampled = prompts_seen_by(model, lambda: chat.score(model, None, tokenizer, CONVERSATIONS, options, seed=0))
    answered = prompts_seen_by(model, lambda: generate_replies(model, tokenizer, CONVERSATIONS, [0.0, 0.0],
                                                               max_new_tokens=2, batch_size=8, seed=0))
    assert sampled == expected
    assert answered == expected
