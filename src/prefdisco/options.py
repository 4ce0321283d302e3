"""Option dataclasses built from config sections, with errors that name the config key."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def options_from(cls: type[T], raw: dict[str, Any], where: str) -> T:
    """``cls(**raw)``; an unknown or missing key is a ValueError that names ``where`` (the config section) and the key.

    The schema catches these before any job runs; this is the same check for entry points run by hand.
    """
    known = sorted(f.name for f in fields(cls))
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {known}")
    try:
        return cls(**raw)
    except TypeError as error:  # a required field without a default
        raise ValueError(f"{where}: {error}") from None
