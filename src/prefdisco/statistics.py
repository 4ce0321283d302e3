"""Intervals over training seeds x held-out prompts, paired differences to a control, promotion and correction.

Pure functions on in-memory numbers; every stage that ranks or compares objectives goes through them.

The interval method (``METHOD``)
    A unit's values form a seeds x prompts matrix ``y[s, p]`` (one value per held-out prompt, the mean over that
    prompt's samples, for each training seed). Common random numbers make the prompts and the sampling seed the
    same for every unit, and a training seed fixes the data order, so the matrix follows the crossed two-way
    random-effects model ``y = mu + a_s + b_p + e_sp``. The grand mean then has variance
    ``var_seed / S + var_prompt / P + var_resid / (S P)``; the three components come from the two-way ANOVA mean
    squares (method of moments, each truncated at zero), and the 95% interval is the normal one, mean +- 1.96 se.
    A deterministic, closed form rather than a bootstrap: a seeds x prompts bootstrap double-counts the residual
    and with two or three seeds resamples almost nothing.

One seed
    The seed component cannot be estimated from a unit trained once. It is borrowed from the control objective,
    trained at several seeds: its seed variance (``seed_variance``). For a unit with several seeds the borrowed
    value is pooled with the unit's own, weighted by degrees of freedom (it assumes every objective has the same
    seed-to-seed spread, which the unit's own seeds then correct). A paired difference of two units with
    independent seed effects has twice that variance, which we use without a covariance credit for the shared data
    order: conservative.

Paired difference to the control
    The candidate's and the control's matrices are subtracted cell by cell on the seeds both have (same training
    seed, same prompt), and the difference matrix gets the same treatment. Prompt difficulty cancels, which is
    what makes a difference of 0.03 visible when each objective's own interval is +-0.05.

Promotion (the cascade)
    A candidate is promoted to more seeds when it could still be the best: its upper bound reaches the
    incumbent's lower bound, the incumbent being the record with the highest lower bound.

Multiple comparisons
    Holm's step-down correction of the one-sided p-values of every candidate against the control (family-wise
    error at 5%): a run that compares many candidates is not allowed to call the luckiest one a winner.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Mapping, Sequence

LEVEL = 0.95
METHOD = ("two-way random effects over training seeds x held-out prompts (ANOVA variance components), "
          "normal 95% interval; one-seed units borrow the control's seed variance")
HOLM = "Holm"


@dataclass(frozen=True)
class SeedVariance:
    """A seed-to-seed variance component and its degrees of freedom (seeds - 1 of the unit it came from)."""

    value: float
    df: int

    def doubled(self) -> "SeedVariance":
        """The seed variance of a difference of two units with independent seed effects of this variance."""
        return SeedVariance(2.0 * self.value, self.df)


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval over seeds x prompts."""

    mean: float
    low: float
    high: float
    se: float
    seeds: int
    prompts: int
    seed_variance: str  # where the seed component came from: "own", "pooled", "borrowed", "none"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Estimate":
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})

    def text(self, digits: int = 3, signed: bool = False) -> str:
        """``0.169 [0.140, 0.198]``; signed: ``+0.028 [-0.015, +0.071]``."""
        sign = "+" if signed else ""
        return f"{self.mean:{sign}.{digits}f} [{self.low:{sign}.{digits}f}, {self.high:{sign}.{digits}f}]"


def z_value(level: float = LEVEL) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def _check_matrix(values: Sequence[Sequence[float]]) -> tuple[int, int]:
    if not values or not values[0]:
        raise ValueError("an estimate needs at least one seed and one prompt")
    widths = {len(row) for row in values}
    if len(widths) != 1:
        raise ValueError(f"every seed needs the same held-out prompts; got rows of lengths {sorted(widths)}")
    for row in values:
        if not all(math.isfinite(v) for v in row):
            raise ValueError("per-prompt values must be finite")
    return len(values), len(values[0])


def variance_components(values: Sequence[Sequence[float]]) -> tuple[float | None, float, float | None]:
    """(seed, prompt, residual) variance components of a seeds x prompts matrix, each truncated at zero.

    With one seed the prompt component holds prompt and residual together and seed and residual are None; with
    one prompt the seed component holds seed and residual together.
    """
    seeds, prompts = _check_matrix(values)
    grand = sum(map(sum, values)) / (seeds * prompts)
    seed_means = [sum(row) / prompts for row in values]
    prompt_means = [sum(values[s][p] for s in range(seeds)) / seeds for p in range(prompts)]
    if seeds == 1:
        spread = sum((m - grand) ** 2 for m in prompt_means) / (prompts - 1) if prompts > 1 else 0.0
        return None, spread, None
    if prompts == 1:
        return sum((m - grand) ** 2 for m in seed_means) / (seeds - 1), 0.0, None
    ms_seed = prompts * sum((m - grand) ** 2 for m in seed_means) / (seeds - 1)
    ms_prompt = seeds * sum((m - grand) ** 2 for m in prompt_means) / (prompts - 1)
    ss_resid = sum((values[s][p] - seed_means[s] - prompt_means[p] + grand) ** 2
                   for s in range(seeds) for p in range(prompts))
    ms_resid = ss_resid / ((seeds - 1) * (prompts - 1))
    return max(0.0, (ms_seed - ms_resid) / prompts), max(0.0, (ms_prompt - ms_resid) / seeds), ms_resid


def seed_variance_of(values: Sequence[Sequence[float]]) -> SeedVariance | None:
    """The seed component of a unit trained at several seeds (e.g. the control), or None with one seed."""
    seeds, _ = _check_matrix(values)
    if seeds < 2:
        return None
    return SeedVariance(variance_components(values)[0], seeds - 1)


def estimate(values: Sequence[Sequence[float]], seed_variance: SeedVariance | None = None,
             level: float = LEVEL) -> Estimate:
    """Mean of a seeds x prompts matrix with its interval (see the module docstring).

    ``seed_variance`` is the borrowed seed component: used alone for a one-seed unit, pooled with the unit's own
    for several seeds. With one seed and none borrowed, the interval covers prompts only (``seed_variance`` of
    the result says "none"); with one seed and one prompt and none borrowed, the interval is undefined (NaN).
    """
    seeds, prompts = _check_matrix(values)
    mean = sum(map(sum, values)) / (seeds * prompts)
    seed_var, prompt_var, resid_var = variance_components(values)
    if seeds == 1:
        source = "borrowed" if seed_variance is not None else "none"
        if prompts == 1 and seed_variance is None:
            return Estimate(mean, math.nan, math.nan, math.nan, seeds, prompts, source)
        variance = (seed_variance.value if seed_variance else 0.0) + prompt_var / prompts
    else:
        source = "own"
        if seed_variance is not None and seed_variance.df > 0:
            own_df = seeds - 1
            seed_var = (own_df * seed_var + seed_variance.df * seed_variance.value) / (own_df + seed_variance.df)
            source = "pooled"
        if prompts == 1:
            variance = seed_var / seeds
        else:
            variance = seed_var / seeds + prompt_var / prompts + resid_var / (seeds * prompts)
    se = math.sqrt(variance)
    half = z_value(level) * se
    return Estimate(mean, mean - half, mean + half, se, seeds, prompts, source)


def paired_difference(candidate: Mapping[int, Sequence[float]], control: Mapping[int, Sequence[float]],
                      seed_variance: SeedVariance | None = None, level: float = LEVEL) -> Estimate:
    """Candidate minus control, prompt by prompt and seed by seed, on the training seeds both have.

    ``candidate`` and ``control`` map a training seed to its per-prompt values (held-out order). ``seed_variance``
    is the seed component of a difference to borrow (see :meth:`SeedVariance.doubled`).
    """
    common = sorted(set(candidate) & set(control))
    if not common:
        raise ValueError(f"no training seed in common: candidate has {sorted(candidate)}, control {sorted(control)}")
    rows = []
    for seed in common:
        if len(candidate[seed]) != len(control[seed]):
            raise ValueError(f"seed {seed}: candidate has {len(candidate[seed])} prompts, control "
                             f"{len(control[seed])}; a paired difference needs the same held-out prompts")
        rows.append([c - r for c, r in zip(candidate[seed], control[seed])])
    return estimate(rows, seed_variance, level)


def p_value_greater(difference: Estimate) -> float:
    """One-sided p-value of "the difference is > 0" (normal approximation); 1 when undefined."""
    if not math.isfinite(difference.se):
        return 1.0
    if difference.se == 0.0:
        return 0.0 if difference.mean > 0 else 1.0
    return 1.0 - NormalDist().cdf(difference.mean / difference.se)


def p_value_less(difference: Estimate) -> float:
    """One-sided p-value of "the difference is < 0"."""
    flipped = Estimate(-difference.mean, -difference.high, -difference.low, difference.se, difference.seeds,
                       difference.prompts, difference.seed_variance)
    return p_value_greater(flipped)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (family-wise error control)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def incumbent(estimates: Mapping[str, Estimate]) -> str | None:
    """The record with the highest lower bound (undefined bounds never win); None when there is none."""
    defined = {key: e for key, e in estimates.items() if math.isfinite(e.low)}
    if not defined:
        return None
    return max(defined, key=lambda key: (defined[key].low, defined[key].mean))


def could_be_best(candidate: Estimate, best: Estimate) -> bool:
    """The promotion rule: the candidate's upper bound reaches the incumbent's lower bound."""
    if not math.isfinite(candidate.high):
        return True  # nothing rules it out yet
    return candidate.high >= best.low


def promotions(estimates: Mapping[str, Estimate], new: Sequence[str]) -> dict[str, tuple[bool, str]]:
    """For each new record: promote it to more seeds or not, and why (see :func:`could_be_best`)."""
    best_id = incumbent(estimates)
    decisions = {}
    for key in new:
        mine = estimates[key]
        if best_id is None:
            decisions[key] = (True, "no incumbent with a defined interval yet")
        elif best_id == key:
            decisions[key] = (True, f"incumbent: highest lower bound {mine.low:.4f}")
        elif could_be_best(mine, estimates[best_id]):
            decisions[key] = (True, f"could still be the best: upper bound {mine.high:.4f} >= incumbent "
                                    f"{best_id}'s lower bound {estimates[best_id].low:.4f}")
        else:
            decisions[key] = (False, f"ruled out: upper bound {mine.high:.4f} < incumbent {best_id}'s lower "
                                     f"bound {estimates[best_id].low:.4f}")
    return decisions


def minimum_detectable_difference(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The true difference a two-sided test at ``alpha`` detects with probability ``power``, given its se."""
    normal = NormalDist()
    return (normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)) * se


def per_prompt_means(prompt_indices: Sequence[int], values: Sequence[float], n_prompts: int) -> list[float]:
    """One value per prompt, in prompt order: the mean of that prompt's samples (NaN for a prompt with none)."""
    sums = [0.0] * n_prompts
    counts = [0] * n_prompts
    for index, value in zip(prompt_indices, values):
        sums[index] += value
        counts[index] += 1
    return [s / c if c else math.nan for s, c in zip(sums, counts)]
