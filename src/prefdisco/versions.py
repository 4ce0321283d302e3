"""The torch, transformers and TRL versions the trainer is known to be right on, checked when it is imported.

``ObjectiveDPOTrainer`` overrides TRL internals (``_compute_loss``, ``_precompute_ref_logps``, ``hash_module``,
``trl.trainer.utils.add_fused_lm_head``) that change between minor releases: outside these ranges it fails at import
with an obscure message or, worse, trains differently. The fused LM head arrived in TRL 1.15, whose kernel imports
Triton, absent from CPU builds of torch; 1.16 is the first to run it without. The ranges are those the golden test (tests/test_training.py,
our trainer against stock TRL step for step) passed on; transformers 4.56.2 is TRL 1.16's own minimum. pyproject.toml
pins the same ranges (tests/test_dependencies.py keeps the two equal). Importing this module checks them.
"""

from __future__ import annotations

import importlib.metadata as metadata

from packaging.specifiers import SpecifierSet
from packaging.version import Version

SUPPORTED = {
    "torch": ">=2.13,<2.14",
    "transformers": ">=4.56.2,<5.25",
    "trl": ">=1.16,<1.17",
}


class UnsupportedVersionError(ImportError):
    """An installed package the trainer depends on is outside the range it is known to be right on."""


def check(supported: dict[str, str] = SUPPORTED) -> None:
    """Raise UnsupportedVersionError naming every package that is missing or outside its supported range."""
    problems = []
    for name, specifier in supported.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed; prefdisco supports {name}{specifier}")
            continue
        if not SpecifierSet(specifier).contains(Version(installed), prereleases=True):
            problems.append(f"{name} {installed} is installed; prefdisco supports {name}{specifier}")
    if problems:
        pins = " ".join(f"'{name}{specifier}'" for name, specifier in supported.items())
        raise UnsupportedVersionError(
            "; ".join(problems) + ". The trainer overrides TRL internals and is checked against stock TRL only in "
            f"these ranges (pyproject.toml). Install them: pip install {pins}"
        )


check()
