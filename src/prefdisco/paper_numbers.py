"""The paper's published numbers (DiscoPOP, Lu et al. 2024), shipped with the package as data.

They are drawn beside ours as a separate series or column labelled :data:`PAPER_LABEL`, never mixed with our
results. Files (``prefdisco/data/paper/``), from the authors' published result files:

- ``imdb_reward_kl.csv``: IMDb positive reviews, one row per (objective, beta, sampling seed): reward, KL.
- ``alpacaeval2.csv``: AlpacaEval 2.0 per objective against the SFT model and GPT-4 Turbo.
- ``tldr.csv``: TL;DR win rates per objective against the human summary and the SFT model.
- ``mtbench_reported.csv``: reported MT-Bench scores.

The authors call SLiC "hinge" in their IMDb files; it is renamed to ``slic``, this package's name.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

PAPER_LABEL = "paper (Lu et al. 2024)"
FILES = {"imdb": "imdb_reward_kl.csv", "alpaca_eval": "alpacaeval2.csv", "tldr": "tldr.csv",
         "mt_bench": "mtbench_reported.csv"}
_RENAMED = {"hinge": "slic"}


def paper_table(name: str) -> pd.DataFrame:
    """One of the paper's tables (a key of :data:`FILES`), objectives named as in this package."""
    if name not in FILES:
        raise KeyError(f"no paper table {name!r}; choose one of {', '.join(FILES)}")
    with resources.files("prefdisco").joinpath("data", "paper", FILES[name]).open() as handle:
        table = pd.read_csv(handle)
    if name == "imdb":
        table = table.drop(columns=[c for c in table.columns if c.startswith("Unnamed")])
        table = table.rename(columns={"loss": "objective", "kl_divergence": "kl"})
    table["objective"] = table["objective"].replace(_RENAMED)
    return table


def paper_imdb_summary() -> pd.DataFrame:
    """The paper's IMDb rows per (objective, beta): mean reward and KL over its seeds and their 95% t-intervals
    over those seeds (sampling seeds of one training each, as the authors ran them)."""
    from scipy import stats

    rows = []
    # Some objectives appear twice per seed in the authors' file (re-runs): every row counts as a sample.
    for (objective, beta), group in paper_table("imdb").groupby(["objective", "beta"]):
        row = {"objective": objective, "beta": float(beta), "n": len(group)}
        for column in ("reward", "kl"):
            values = group[column].dropna()
            mean = float(values.mean())
            half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / len(values) ** 0.5) if len(values) > 1 else float("nan")
            row.update({f"{column}_mean": mean, f"{column}_ci_low": mean - half, f"{column}_ci_high": mean + half})
        rows.append(row)
    return pd.DataFrame(rows)
