"""An audit hook armed around calls into candidate code: every audited event there is blocked and recorded.

Python raises audit events for what reaches the operating system (open, os.*, subprocess, socket, ctypes,
import, exec, compile, object.__getattr__ ...); normal torch ops raise none. So a whitelist of (almost) nothing is
both the simplest and the strictest choice. The sandbox child arms it around each property check, and the training
process around each objective call, on top of the static policy and the constrained loader.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterator

from prefdisco.sandbox.checks import SandboxViolation

# Audited events torch internals may raise harmlessly; everything else is blocked while armed.
HARMLESS_EVENTS = frozenset({"builtins.id", "sys._getframe"})


class AuditGuard:
    """An audit hook that blocks every audited event (bar a harmless few) while armed, and records it."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self._armed = False
        self._allowed = HARMLESS_EVENTS
        sys.addaudithook(self._hook)  # cannot be removed; disarmed it costs one comparison per event

    @contextlib.contextmanager
    def armed(self, allow: frozenset[str] = frozenset()) -> Iterator[None]:
        self._allowed = HARMLESS_EVENTS | allow
        self._armed = True
        try:
            yield
        finally:
            self._armed = False

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self._armed or event in self._allowed:
            return
        detail = f"{event}({args[0]!r})" if args and isinstance(args[0], (str, bytes, int)) else event
        message = f"{detail[:200]} is not permitted in the sandbox"
        self.violations.append(message)
        raise SandboxViolation(message)
