"""The one constrained loader for objective programs, used wherever candidate code is executed.

It applies the static policy, compiles the code on its own (no inherited ``__future__`` flags) and executes
the definition in a fresh namespace that holds only torch, F, math and a small dict of safe builtins. The
validation child and the training worker (sandbox.worker) use it, both confined by runner.confine; the
training process itself never loads candidate code.
"""

from __future__ import annotations

import builtins
import math
import sys
from types import CodeType
from typing import Any, Callable

import torch
import torch.nn.functional as F

from prefdisco.sandbox.static_policy import IMPORT_HINT, IMPORTABLE_MODULES, SAFE_BUILTIN_NAMES, check_source

OBJECTIVE_FILENAME = "<objective>"  # tracebacks point here; checks use it to find the failing line


class ObjectiveContext:
    """What an objective sees as ``self``: only ``beta``."""

    __slots__ = ("beta",)

    def __init__(self, beta: float) -> None:
        self.beta = float(beta)

    def __repr__(self) -> str:
        return f"ObjectiveContext(beta={self.beta})"


def _restricted_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = None, level: int = 0) -> Any:
    """``__import__`` for objective code: hands out already-loaded modules and never loads anything.

    Two callers reach it. Import statements in the objective (fromlist None or a tuple) get only the allowed
    modules. torch's C++ code also calls it, through PyImport_Import, which looks ``__import__`` up in the
    builtins of the frame that is running -- the objective's -- and passes a list as fromlist (e.g.
    ``torch.tensor(0.5, device=x.device)`` imports torch.storage this way); those calls get any module
    already loaded. Objective code cannot make that call itself: the policy forbids naming ``__import__``.
    """
    module = sys.modules.get(name)
    internal = isinstance(fromlist, list) and level == 0 and module is not None
    if not internal and (level != 0 or name not in IMPORTABLE_MODULES):
        raise ImportError(f"import of '{name}' is not allowed; {IMPORT_HINT}")
    if module is None:  # every allowed module is loaded by ``import torch`` / ``import math`` above
        raise ImportError(f"module '{name}' is not loaded in this process")
    if fromlist:
        return module
    return sys.modules[name.partition(".")[0]]


SAFE_BUILTINS: dict[str, Any] = {name: getattr(builtins, name) for name in SAFE_BUILTIN_NAMES}
SAFE_BUILTINS["__import__"] = _restricted_import


def objective_namespace() -> dict[str, Any]:
    """A fresh global namespace for one objective program."""
    return {
        "__builtins__": dict(SAFE_BUILTINS),  # a copy, so one program cannot tamper with another's
        "__name__": "objective",
        "torch": torch,
        "F": F,
        "math": math,
    }


def load_objective(code: str, arguments: tuple[str, ...] | None = None) -> Callable[..., Any]:
    """Check ``code`` against the policy, execute its definition in a fresh namespace, return the function.

    Call the result as ``fn(ObjectiveContext(beta), policy_chosen_logps, policy_rejected_logps,
    reference_chosen_logps, reference_rejected_logps)``. Raises PolicyViolation for code the policy rejects;
    errors raised while executing the definition (a failing annotation, say) propagate unchanged.
    ``arguments`` is the contract's argument list when it is not the preference family's.
    """
    name, compiled = compile_objective(code, arguments)
    return define_objective(name, compiled)


def compile_objective(code: str, arguments: tuple[str, ...] | None = None) -> tuple[str, CodeType]:
    """First half of load_objective: the static policy and compilation (both raise audit events, so the
    sandbox runs this half before arming its audit hook)."""
    name = check_source(code) if arguments is None else check_source(code, arguments)
    return name, compile(code, OBJECTIVE_FILENAME, "exec", dont_inherit=True)


def define_objective(name: str, compiled: CodeType) -> Callable[..., Any]:
    """Second half of load_objective: execute the checked definition in a fresh namespace."""
    namespace = objective_namespace()
    exec(compiled, namespace)  # noqa: S102 -- the policy-checked definition, in a bare namespace
    return namespace[name]
