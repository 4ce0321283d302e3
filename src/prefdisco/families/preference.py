"""The preference family: offline preference-optimization objectives over four log-prob vectors (DiscoPOP)."""

from __future__ import annotations

from prefdisco import objectives
from prefdisco.families import Family
from prefdisco.proposers.evolution import PREFERENCE_SPACE
from prefdisco.proposers.prompts import SYSTEM_PROMPT

FAMILY = Family(
    name="preference",
    contract_arguments=objectives.CONTRACT_ARGUMENTS,
    self_holds="self.beta, the scale of the implicit reward margin",
    library=objectives.LIBRARY,
    seed_objectives=objectives.SEED_OBJECTIVES,
    display_names=objectives.DISPLAY_NAMES,
    library_source=objectives.library_source,
    checks_module="prefdisco.sandbox.checks",
    system_prompt=SYSTEM_PROMPT,
    expression_space=PREFERENCE_SPACE,
    train_module="prefdisco.stages.train",
    evaluate_module="prefdisco.stages.evaluate",
)
