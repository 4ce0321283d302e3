"""The classification family: losses over (logits (B, C), targets (B,)), the paper's CIFAR-10 study (Fig. 2)."""

from __future__ import annotations

from prefdisco.classification import objectives
from prefdisco.classification.expressions import CLASSIFICATION_SPACE
from prefdisco.classification.prompt import SYSTEM_PROMPT
from prefdisco.families import Family

FAMILY = Family(
    name="classification",
    contract_arguments=objectives.CONTRACT_ARGUMENTS,
    self_holds="nothing: the function takes no self",
    library=objectives.LIBRARY,
    seed_objectives=objectives.SEED_OBJECTIVES,
    display_names=objectives.DISPLAY_NAMES,
    library_source=objectives.library_source,
    checks_module="prefdisco.classification.checks",
    system_prompt=SYSTEM_PROMPT,
    expression_space=CLASSIFICATION_SPACE,
    train_module="prefdisco.classification.train",
    evaluate_module="prefdisco.classification.evaluate",
)
