"""Objective families: the one place that knows what differs between kinds of discovered objectives.

A family is a contract (the argument names of the one function a proposer writes, and what ``self`` holds), its
property checks and behavioural fingerprint (run in the sandbox child), its library of known objectives (the seed
archive), its expression space for the offline evolutionary proposer, its task description for the LLM proposer,
and the stages that train and score a candidate. Propose, validate, archive, the proposers' JSON protocol and the
figures are shared and ask the family; config key ``family`` (default ``preference``) selects it.

    preference      four log-prob vectors -> per-example losses (DiscoPOP's main study)
    classification  (logits (B, C), targets (B,)) -> per-example losses (the paper's CIFAR-10 study, Fig. 2)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

FAMILY_NAMES = ("preference", "classification")
DEFAULT_FAMILY = "preference"


@dataclass(frozen=True)
class Family:
    """Everything the shared stages ask of an objective family."""

    name: str
    contract_arguments: tuple[str, ...]  # the function's exact argument list (the static policy checks it)
    self_holds: str  # what ``self`` is, in words (the LLM prompt and the docs say it)
    library: tuple[str, ...]  # short names of the known objectives, kept as source text
    seed_objectives: tuple[str, ...]  # the default seed archive (generation 0)
    display_names: dict[str, str]
    library_source: Callable[[str], str]
    checks_module: str  # module with run_checks(code, beta, guard, progress, memory_mb): runs in the sandbox child
    system_prompt: str  # the LLM proposer's task description (the paper's JSON protocol)
    expression_space: Any  # proposers.evolution.ExpressionSpace
    train_module: str  # python -m <train_module>: trains one unit
    evaluate_module: str  # python -m <evaluate_module>: scores one unit (fitness)

    def run_checks(self) -> Callable[..., dict]:
        """The property checks, looked up now (in the parent, before a sandbox child forks: the child imports
        nothing once confined)."""
        return getattr(importlib.import_module(self.checks_module), "run_checks")


def get_family(name: str | None) -> Family:
    """The family called ``name`` (None: the default). Raises ValueError naming config key ``family``."""
    name = name or DEFAULT_FAMILY
    if name not in FAMILY_NAMES:
        raise ValueError(f"family: {name!r} is not one of {', '.join(FAMILY_NAMES)}")
    return importlib.import_module(f"{__name__}.{name}").FAMILY
