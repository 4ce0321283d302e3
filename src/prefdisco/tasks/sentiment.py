"""The embedded default task: continue movie-review openings positively (stands in for the paper's IMDb task).

Preference data is built in the DAG: the reference samples several completions per training prompt and an
offline sentiment scorer (VADER) ranks them; the best and worst form a pair. A trained policy is scored on
held-out prompts by the mean reward of its own samples and by KL(policy || reference), estimated from the
log-probabilities of those samples under both models.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from importlib import resources

from ..options import options_from
from ..shared_layers import shared_bottom_layers
from ..sampling import Completion, mean_and_sem_by_prompt, sample_completions, sampled_kl
from ..statistics import per_prompt_means


@dataclass
class SentimentOptions:
    train_prompts: int = 160  # prompts used to build preference pairs
    heldout_prompts: int = 64  # prompts kept apart to score trained policies
    samples_per_prompt: int = 4  # completions sampled per training prompt; best vs worst makes the pair
    min_reward_gap: float = 0.05  # pairs whose two rewards are closer than this carry no preference
    max_new_tokens: int = 24
    temperature: float = 1.0  # sampling temperature when building pairs
    eval_samples_per_prompt: int = 2  # evaluation samples purely (temperature 1, no top-k): the KL estimate needs it
    batch_size: int = 32


def bundled_prompts() -> list[str]:
    text = resources.files("prefdisco").joinpath("data", "sentiment_prompts.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def split_prompts(prompts: list[str], n_train: int, n_heldout: int, seed: int) -> tuple[list[str], list[str]]:
    """A seeded shuffle, then disjoint train and held-out prompts."""
    if n_train + n_heldout > len(prompts):
        raise ValueError(
            f"task.train_prompts + task.heldout_prompts = {n_train + n_heldout}, "
            f"but only {len(prompts)} prompts are bundled"
        )
    shuffled = prompts[:]
    random.Random(seed).shuffle(shuffled)
    return shuffled[:n_train], shuffled[n_train : n_train + n_heldout]


_ANALYZER = None


def sentiment_reward(texts: list[str]) -> list[float]:
    """VADER compound score in [-1, 1] of each whole review (prompt + completion)."""
    global _ANALYZER
    if _ANALYZER is None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        _ANALYZER = SentimentIntensityAnalyzer()
    return [_ANALYZER.polarity_scores(t)["compound"] for t in texts]


def build_preference_pairs(model, tokenizer, prompts: list[str], options: SentimentOptions, seed: int) -> list[dict]:
    """Sample completions from the reference, rank them by reward, and keep best-vs-worst pairs."""
    completions = sample_completions(
        model,
        tokenizer,
        prompts,
        options.samples_per_prompt,
        options.max_new_tokens,
        seed=seed,
        temperature=options.temperature,
        batch_size=options.batch_size,
    )
    rewards = sentiment_reward([c.prompt + c.text for c in completions])
    by_prompt: dict[int, list[tuple[float, Completion]]] = {}
    for completion, reward in zip(completions, rewards):
        by_prompt.setdefault(completion.prompt_index, []).append((reward, completion))
    pairs = []
    for prompt_index, scored in sorted(by_prompt.items()):
        scored.sort(key=lambda item: item[0])
        (low, rejected), (high, chosen) = scored[0], scored[-1]
        if high - low < options.min_reward_gap or chosen.text == rejected.text:
            continue
        pairs.append(
            {
                "pair_id": f"p{prompt_index:05d}",
                "prompt": chosen.prompt,
                "chosen": chosen.text,
                "rejected": rejected.text,
                "chosen_reward": high,
                "rejected_reward": low,
            }
        )
    return pairs


def score_policy(policy, reference, tokenizer, prompts: list[str], options: SentimentOptions, seed: int) -> dict:
    """Mean held-out reward of the policy's samples, and KL(policy || reference) per completion.

    KL is the Monte-Carlo estimate E_{y~policy}[log policy(y|x) - log reference(y|x)], unbiased because the
    samples are drawn from the policy itself at temperature 1 with no truncation. ``reference=None`` scores the
    reference against itself (KL exactly 0).
    """
    completions = sample_completions(
        policy,
        tokenizer,
        prompts,
        options.eval_samples_per_prompt,
        options.max_new_tokens,
        seed=seed,
        temperature=1.0,
        top_k=0,
        batch_size=options.batch_size,
        keep_hidden_at=shared_bottom_layers(policy, reference),
    )
    rewards = sentiment_reward([c.prompt + c.text for c in completions])
    kls = sampled_kl(policy, reference, tokenizer, completions, options.batch_size)
    reward, reward_sem = mean_and_sem_by_prompt(completions, rewards)
    kl, kl_sem = mean_and_sem_by_prompt(completions, kls)
    indices = [c.prompt_index for c in completions]
    return {
        "reward": reward,
        "reward_sem": reward_sem,
        "kl": kl,
        "kl_sem": kl_sem,
        "n_prompts": len(prompts),
        "n_samples": len(completions),
        "mean_completion_tokens": statistics.fmean(len(c.completion_ids) for c in completions),
        # one value per held-out prompt (held-out order): the unit of the seeds x prompts intervals
        "per_prompt": {"reward": per_prompt_means(indices, rewards, len(prompts)),
                       "kl": per_prompt_means(indices, kls, len(prompts))},
        "examples": [{"prompt": c.prompt, "completion": c.text, "reward": r} for c, r in list(zip(completions, rewards))[:8]],
    }


def to_options(raw: dict) -> SentimentOptions:
    return options_from(SentimentOptions, raw, "task.options (task 'sentiment')")


def build(model, tokenizer, options: SentimentOptions, seed: int) -> tuple[list[dict], list[str]]:
    """Stage entry: preference pairs from the training prompts, and the held-out prompts."""
    train, heldout = split_prompts(bundled_prompts(), options.train_prompts, options.heldout_prompts, seed)
    return build_preference_pairs(model, tokenizer, train, options, seed), heldout


def score(policy, reference, tokenizer, heldout: list[str], options: SentimentOptions, seed: int) -> dict:
    """Stage entry: metrics of a policy on the held-out prompts."""
    return score_policy(policy, reference, tokenizer, heldout, options, seed)
