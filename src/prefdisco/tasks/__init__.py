"""Inner-loop tasks: how each task's preference data is obtained and how a trained model is scored.

Each task module provides ``to_options(dict)``, ``build(...)`` and ``score(...)`` through the small registry
below, so the stages stay task-agnostic.
"""

from __future__ import annotations

from importlib import import_module

TASKS = {
    "sentiment": "prefdisco.tasks.sentiment",
    "chat": "prefdisco.tasks.chat",
    "imdb": "prefdisco.tasks.imdb",
    "tldr": "prefdisco.tasks.tldr",
}


def get_task(name: str):
    if name not in TASKS:
        raise ValueError(f"task: {name!r} is not available; choose one of {', '.join(TASKS)}")
    return import_module(TASKS[name])
