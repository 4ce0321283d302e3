"""Errors shared by the stages, and the one rule for error text that enters a record or a prompt: keep it small.

A candidate controls its own exception messages (a 100 MB ``str`` is one line of code), and those messages flow
into validation records, train.json, eval.json, the archive, logs and the next generation's prompt. Every such
path truncates through :func:`truncate_error`.
"""

from __future__ import annotations

ERROR_LIMIT = 4000  # characters; a traceback line and a useful message fit, a flood does not


class CandidateError(RuntimeError):
    """The candidate objective itself failed during training (raised, crashed, hung, non-finite, wrong shape):
    a result to record as ``train_failed``, not a fault of the workflow."""


def truncate_error(message: str, limit: int = ERROR_LIMIT) -> str:
    """``message`` cut to its first ``limit`` characters, with the original length noted when it was cut."""
    if not isinstance(message, str):
        message = str(message)
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... [truncated, {len(message)} chars in all]"
