"""The objective-program contract and the library of known objectives, kept as source text.

A proposer writes one Python function with the paper's interface::

    def <name>(self, policy_chosen_logps, policy_rejected_logps,
               reference_chosen_logps, reference_rejected_logps) -> losses of shape (B,)

``self.beta`` is set; ``torch``, ``F`` (torch.nn.functional) and ``math`` are in scope. Library objectives are
data here: this module reads their text and never executes it (the sandbox's loader does that, elsewhere).
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Mapping

CONTRACT_ARGUMENTS = (
    "self",
    "policy_chosen_logps",
    "policy_rejected_logps",
    "reference_chosen_logps",
    "reference_rejected_logps",
)

# The paper's seed archive (the four baselines of the published discovery run) and its discovered objectives.
SEED_OBJECTIVES = ("dpo", "slic", "ipo", "kto")
DISCOVERED_OBJECTIVES = ("lrml", "padll", "aqfl", "aql", "dbaql", "cell", "pfl")
LIBRARY = SEED_OBJECTIVES + DISCOVERED_OBJECTIVES

DISPLAY_NAMES = {
    "dpo": "DPO",
    "slic": "SLiC",
    "ipo": "IPO",
    "kto": "KTO",
    "lrml": "LRML (DiscoPOP)",
    "padll": "PADLL",
    "aqfl": "AQFL",
    "aql": "AQL",
    "dbaql": "DBAQL",
    "cell": "CELL",
    "pfl": "PFL",
}


def display_name(name: str) -> str:
    """A library objective's name for a person, in either family (its short name when it has none)."""
    from .classification.objectives import DISPLAY_NAMES as CLASSIFICATION_NAMES

    return DISPLAY_NAMES.get(name) or CLASSIFICATION_NAMES.get(name, name)



def objective_label(record: Mapping[str, Any]) -> str:
    """An archive record's label for a person: the display name for library objectives, the candidate id and name
    for discovered ones.

    Seed baselines get the bare display name ("DPO"); a later candidate that re-derived a library objective keeps
    its id as well, so that it cannot be mistaken for the baseline in a legend.
    """
    library = record.get("library_name")
    record_id = record.get("id", "?")
    if library:
        display = DISPLAY_NAMES.get(library, library)
        return display if record.get("generation") == 0 else f"{display} [{record_id}]"
    return f"{record_id} {record.get('name') or '(unnamed)'}"

def library_source(name: str) -> str:
    """Source text of a library objective, by its short name (``dpo``, ``lrml`` ...)."""
    if name not in LIBRARY:
        raise KeyError(f"unknown objective {name!r}; the library holds {', '.join(LIBRARY)}")
    return resources.files("prefdisco").joinpath("objective_library", f"{name}.py").read_text()


def function_name(source: str) -> str:
    """Name of the single top-level function in ``source`` (the contract has exactly one)."""
    import ast

    functions = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
    if len(functions) != 1:
        raise ValueError(f"expected exactly one function, found {len(functions)}: {functions}")
    return functions[0]
