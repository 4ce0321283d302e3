"""The classification-objective contract and its library of known objectives, kept as source text.

    def <name>(logits, targets) -> per-example losses of shape (B,)

``logits`` is a float tensor (B, C) of unnormalised class scores, ``targets`` a long tensor (B,) of class indices;
``torch``, ``F`` and ``math`` are in scope and there is no ``self`` (nothing else is configured). The text is data
here; only the sandbox and the confined objective worker execute it.
"""

from __future__ import annotations

from importlib import resources

CONTRACT_ARGUMENTS = ("logits", "targets")

SEED_OBJECTIVES = ("cross_entropy", "label_smoothing", "focal")
# Combinations of the seeds' ideas of the kind the paper's CIFAR-10 run reports discovering (Fig. 2: exploring new
# concepts, tuning them, combining them). Written for this project: the paper's own code for these could not be
# retrieved here, so they are not presented as the published functions.
DISCOVERED_OBJECTIVES = ("smoothed_focal", "confidence_penalty")
LIBRARY = SEED_OBJECTIVES + DISCOVERED_OBJECTIVES

DISPLAY_NAMES = {
    "cross_entropy": "Cross-entropy",
    "label_smoothing": "Label smoothing (0.1)",
    "focal": "Focal (gamma 2)",
    "smoothed_focal": "Smoothed focal (combined)",
    "confidence_penalty": "Confidence penalty (combined)",
}


def library_source(name: str) -> str:
    """Source text of a library classification objective, by its short name (``cross_entropy``, ``focal`` ...)."""
    if name not in LIBRARY:
        raise KeyError(f"unknown classification objective {name!r}; the library holds {', '.join(LIBRARY)}")
    return resources.files("prefdisco.classification").joinpath("objective_library", f"{name}.py").read_text()
