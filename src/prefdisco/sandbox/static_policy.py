"""Static policy for untrusted objective programs: parse, walk the AST, reject anything outside the contract.

The policy is a whitelist where that is practical:

* top level: one function, imports of the allowed modules, an optional docstring;
* names: the function's arguments, its own local variables, the safe builtins the loader provides and the
  allowed modules -- anything else is reported as undefined or forbidden;
* module attributes (``torch.x``, ``F.x``, ``math.x``) are resolved against the real modules: they must be
  public functions, dtypes, numbers or a few harmless classes, or one of the allowed submodules used as a
  prefix (``torch.nn.functional.softplus``). This matters because ``torch.os``, ``torch.ctypes`` and ``F.np``
  exist: a name blacklist alone would miss them;
* functions of torch, F, torch.linalg and torch.special, and every attribute on a value (a tensor, a local, a
  call's result), must be on the allow-list of numerical operations (:data:`NUMERICAL_OPERATIONS`: arithmetic,
  elementwise functions, reductions, shape operations, comparisons and where, dtype casts, tensor creation).
  Everything else is refused by name: raw memory (data, data_ptr, storage, sparse tensors), the autograd graph
  (grad_fn, register_hook, backward, requires_grad_), in-place methods (``add_``), copies out of torch (numpy,
  tolist), randomness. A deny list of names that reach the OS or interpreter internals stays in front, for its
  messages. ``math`` is numeric only: all of its public names are allowed.

Messages name the line and the fix, because they are fed back word for word to the LLM that wrote the code.
Resolving module attributes imports torch in the checking process (lazily); it never runs candidate code.
"""

from __future__ import annotations

import ast
import math
import re
import types
from typing import Any

from prefdisco.objectives import CONTRACT_ARGUMENTS

MAX_SOURCE_CHARS = 50_000
MAX_REPORTED_VIOLATIONS = 8

# Modules a program may import. The message text mirrors the contract the proposers are told.
IMPORTABLE_MODULES = ("torch", "torch.nn", "torch.nn.functional", "math", "torch.linalg", "torch.special", "torch.fft")
IMPORT_HINT = "only torch, torch.nn.functional and math may be imported"
# Submodules reachable as a prefix of an attribute chain (torch.linalg.norm, torch.nn.functional.relu).
REACHABLE_MODULES = frozenset(IMPORTABLE_MODULES)

# Builtins the loader provides (see loader.SAFE_BUILTINS; kept in one place there, listed here by name).
SAFE_BUILTIN_NAMES = frozenset(
    """abs all any bool dict divmod enumerate filter float int isinstance len list map max min pow range
    reversed round set slice sorted str sum tuple zip ArithmeticError AssertionError Exception IndexError
    KeyError NotImplementedError OverflowError RuntimeError TypeError ValueError ZeroDivisionError""".split()
)

FORBIDDEN_NAMES = frozenset(
    """open exec eval compile globals locals vars getattr setattr delattr hasattr __import__ input breakpoint
    help dir memoryview type object super classmethod staticmethod property id exit quit copyright credits
    license __builtins__ __build_class__ __loader__ __spec__""".split()
)

# Attribute names refused on any value. Module names are here too (belt and braces: torch.os, F.np exist).
FORBIDDEN_ATTRIBUTES = frozenset(
    """ops hub save load library utils cuda backends distributed multiprocessing jit compile compiler classes
    package onnx from_file fx export testing serialization overrides Function autograd manual_seed seed
    initial_seed get_rng_state set_rng_state default_generator fork wait numpy from_numpy tofile
    share_memory_ pin_memory backward format format_map import_ir_module import_ir_module_from_buffer
    parse_ir get_file_path get_device_module from_dlpack to_dlpack use_deterministic_algorithms
    init_num_threads cond while_loop vmap func mro os sys subprocess socket ctypes importlib builtins
    platform inspect np signal threading glob profiler monitor cpp random""".split()
)
# Patterns: storages reach raw memory and files (UntypedStorage.from_file); set_* mutates global state or
# rebinds a tensor's storage; frame, code, generator and traceback attributes reach interpreter internals.
FORBIDDEN_ATTRIBUTE_PATTERN = re.compile(r"storage|^set_|Script|PyTorchFile|^(gi|cr|ag|f|co|tb)_", re.IGNORECASE)

# Denied attributes that an honest author may reach for, with the advice to give instead.
ATTRIBUTE_HINTS = {
    "backward": "the trainer computes gradients; return the per-example losses",
    "numpy": "numpy is not available; stay in torch",
    "cuda": "the trainer places tensors; use the inputs' device (x.device) if needed",
    "manual_seed": "randomness is not allowed; the loss must be deterministic",
    "seed": "randomness is not allowed; the loss must be deterministic",
    "format": "string formatting is not needed in a loss",
    "autograd": "the trainer computes gradients; write the loss with ordinary differentiable torch ops",
}

# The allow-list: every function of torch / F / torch.linalg / torch.special and every attribute on a value that an
# objective may use. An objective is a numerical function of four vectors, so numerical operations are all it needs.
# Listed in the contract (objectives/README) and, in one line, in the proposers' system prompt.
ALLOWED_OPERATION_GROUPS: dict[str, str] = {
    # arithmetic: +, -, *, / and ** have method forms too
    "arithmetic": """add sub subtract mul multiply div divide true_divide floor_divide remainder fmod neg negative
        reciprocal pow float_power square sqrt rsqrt abs absolute sign sgn signbit addcmul addcdiv lerp hypot
        matmul mm bmm dot outer einsum""",
    # elementwise functions, torch / F / torch.special spellings
    "elementwise": """exp exp2 expm1 log log2 log10 log1p logaddexp logaddexp2 sigmoid logsigmoid softplus relu relu6
        elu selu celu gelu silu mish leaky_relu hardtanh tanh tanhshrink softsign hardsigmoid hardswish softshrink
        hardshrink threshold glu sin cos tan asin acos atan atan2 arcsin arccos arctan sinh cosh asinh acosh atanh
        erf erfc erfinv erfcx lgamma digamma polygamma gammaln psi expit logit log_ndtr ndtr ndtri xlogy xlog1py
        entr sinc i0 i0e i1 i1e clamp clip clamp_min clamp_max floor ceil round trunc frac nan_to_num""",
    # reductions and scans (with their named-tuple results .values / .indices)
    "reductions": """sum mean std var std_mean var_mean prod max min amax amin aminmax argmax argmin median nanmedian
        quantile nanquantile nanmean nansum logsumexp norm vector_norm cumsum cumprod cummax cummin logcumsumexp
        softmax log_softmax softmin normalize all any count_nonzero topk sort argsort kthvalue values indices""",
    # the losses F offers ready-made
    "losses": """binary_cross_entropy binary_cross_entropy_with_logits mse_loss l1_loss smooth_l1_loss huber_loss
        soft_margin_loss margin_ranking_loss hinge_embedding_loss kl_div cosine_similarity cross_entropy nll_loss
        multi_margin_loss one_hot""",
    # comparisons, tests and selection
    "comparisons": """eq ne lt le gt ge greater greater_equal less less_equal isclose allclose equal isfinite isnan
        isinf isposinf isneginf where maximum minimum fmax fmin masked_fill logical_and logical_or logical_not
        logical_xor heaviside""",
    # shape: read, reshape, combine, split, reorder
    "shape": """shape size dim ndim numel nelement reshape view view_as flatten squeeze unsqueeze expand expand_as
        repeat repeat_interleave transpose permute t T mT cat concat concatenate stack hstack vstack chunk split
        unbind narrow flip fliplr roll gather index_select take_along_dim diag diagonal tril triu broadcast_to
        contiguous clone detach item""",
    # dtype and device: casts, and the numeric limits of a dtype
    "dtypes": """to type_as float double half bfloat16 long int bool dtype device is_floating_point is_complex
        eps tiny bits resolution""",
    # new tensors (deterministic, initialised)
    "creation": """tensor as_tensor scalar_tensor zeros ones full zeros_like ones_like full_like arange linspace
        logspace eye""",
    # methods of the Python values a loss builds along the way (lists of terms, dicts of weights)
    "containers": """append extend insert pop items keys get index count""",
}
NUMERICAL_OPERATIONS = frozenset(name for group in ALLOWED_OPERATION_GROUPS.values() for name in group.split())

# Refused names that an honest author (or an LLM) may reach for: why, and what to write instead.
REFUSAL_HINTS = {
    "data": "'.data' bypasses autograd and aliases the trainer's tensor; use the tensor itself, or .detach() for "
            "a constant copy",
    "data_ptr": "raw memory addresses are not available",
    "storage_offset": "storages are not available",
    "grad_fn": "the autograd graph is not available; the loss must be an ordinary function of its four inputs",
    "grad": "the autograd graph is not available; return the losses and the trainer computes gradients",
    "is_leaf": "the autograd graph is not available; the loss must be an ordinary function of its four inputs",
    "requires_grad": "the autograd graph is not available; the loss must be an ordinary function of its four inputs",
    "register_hook": "hooks are not allowed; write the loss you want directly",
    "register_post_accumulate_grad_hook": "hooks are not allowed; write the loss you want directly",
    "retain_grad": "the trainer computes gradients; return the per-example losses",
    "to_dense": "sparse tensors are not available; use dense tensors",
    "tolist": "stay in torch (.tolist() copies the data out of the graph); use tensor operations, or .item() for one "
              "number",
    "empty": "uninitialised memory is not available; use torch.zeros or torch.full",
    "empty_like": "uninitialised memory is not available; use torch.zeros_like or torch.full_like",
    "rand": "randomness is not allowed; the loss must be deterministic",
    "rand_like": "randomness is not allowed; the loss must be deterministic",
    "randn": "randomness is not allowed; the loss must be deterministic",
    "randn_like": "randomness is not allowed; the loss must be deterministic",
    "randint": "randomness is not allowed; the loss must be deterministic",
    "bernoulli": "randomness is not allowed; the loss must be deterministic",
    "multinomial": "randomness is not allowed; the loss must be deterministic",
    "dropout": "randomness is not allowed; the loss must be deterministic",
}
ALLOWED_HINT = ("use arithmetic, torch/F elementwise functions (exp, log, sigmoid, logsigmoid, softplus, relu, tanh, "
                "clamp ...), reductions (sum, mean, std, max ...), shape operations (reshape, unsqueeze, cat, stack "
                "...), comparisons and torch.where, dtype casts (.float(), .to()) or torch.zeros_like / ones_like / "
                "full_like")

# Classes reachable from torch that are plain values (isinstance checks, numeric limits).
# The legacy tensor types appear in the paper's prompt template as annotations (-> torch.FloatTensor).
ALLOWED_TORCH_CLASSES = frozenset(
    """Tensor Size dtype device finfo iinfo FloatTensor DoubleTensor HalfTensor BFloat16Tensor LongTensor
    IntTensor ShortTensor CharTensor ByteTensor BoolTensor""".split()
)

FORBIDDEN_STATEMENTS = {
    ast.Global: "'global' statements are not allowed",
    ast.Nonlocal: "'nonlocal' statements are not allowed",
    ast.ClassDef: "class definitions are not allowed",
    ast.With: "'with' statements are not allowed (no context managers such as torch.no_grad())",
    ast.AsyncWith: "'async with' is not allowed",
    ast.AsyncFunctionDef: "async functions are not allowed",
    ast.AsyncFor: "'async for' is not allowed",
    ast.Await: "'await' is not allowed",
    ast.Yield: "'yield' is not allowed; return the losses tensor",
    ast.YieldFrom: "'yield from' is not allowed; return the losses tensor",
    ast.Try: "try/except is not allowed; let errors surface so they can be reported",
    ast.Match: "'match' statements are not allowed",
}
if hasattr(ast, "TryStar"):  # Python 3.11+
    FORBIDDEN_STATEMENTS[ast.TryStar] = FORBIDDEN_STATEMENTS[ast.Try]


class PolicyViolation(ValueError):
    """The program breaks the static policy; the message says where and why, ready to show the author."""


def check_source(code: str, arguments: tuple[str, ...] = CONTRACT_ARGUMENTS) -> str:
    """Parse ``code`` and apply the static policy. Returns the objective's function name.

    ``arguments`` is the contract's argument list (the objective family's; preference objectives by default).

    Raises PolicyViolation listing every problem found (up to a few), one per line, each with its line number.
    """
    if not isinstance(code, str) or not code.strip():
        raise PolicyViolation("no code: expected the source of one Python function")
    if len(code) > MAX_SOURCE_CHARS:
        raise PolicyViolation(f"the program is {len(code)} characters long; the limit is {MAX_SOURCE_CHARS}")
    try:
        tree = ast.parse(code, filename="<objective>", mode="exec")
    except SyntaxError as error:
        where = f"line {error.lineno}: " if error.lineno else ""
        text = f" in: {error.text.strip()}" if error.text and error.text.strip() else ""
        raise PolicyViolation(f"{where}syntax error: {error.msg}{text}") from None
    except (ValueError, MemoryError, RecursionError) as error:  # null bytes, absurd nesting
        raise PolicyViolation(f"the program could not be parsed: {error}") from None

    checker = _Checker(arguments)
    try:
        name = checker.check_module(tree)
    except RecursionError:
        raise PolicyViolation("expressions are nested too deeply to check; simplify the code") from None
    if checker.violations:
        ordered = sorted(checker.violations, key=_line_of)  # stable: same-line problems keep their order
        shown = ordered[:MAX_REPORTED_VIOLATIONS]
        more = len(checker.violations) - len(shown)
        if more:
            shown.append(f"... and {more} more problem(s)")
        raise PolicyViolation("\n".join(shown))
    assert name is not None
    return name


def _line_of(violation: str) -> float:
    """Sort key: the line a violation names; problems without a line (no function, two functions) go last."""
    match = re.match(r"line (\d+):", violation)
    return int(match.group(1)) if match else math.inf


class _Checker(ast.NodeVisitor):
    def __init__(self, arguments: tuple[str, ...] = CONTRACT_ARGUMENTS) -> None:
        self.arguments = tuple(arguments)
        self.violations: list[str] = []
        # Names bound to modules: the contract's globals plus whatever import statements add.
        self.module_aliases: dict[str, str] = {"torch": "torch", "F": "torch.nn.functional", "math": "math"}
        self.local_names: set[str] = set()
        self.argument_names: set[str] = set()
        # Names whose import was refused: reported once at the import, not again at every use.
        self.refused_names: set[str] = set()

    def fail(self, node: ast.AST | None, message: str) -> None:
        line = getattr(node, "lineno", None)
        text = f"line {line}: {message}" if line else message
        if text not in self.violations:
            self.violations.append(text)

    # ---- top level -------------------------------------------------------------------------------------

    def check_module(self, tree: ast.Module) -> str | None:
        functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
        for index, node in enumerate(tree.body):
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef)):
                continue
            is_docstring = (
                index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            )
            if type(node) in FORBIDDEN_STATEMENTS:
                self.fail(node, FORBIDDEN_STATEMENTS[type(node)])
            elif not is_docstring:
                self.fail(
                    node,
                    f"only one function definition and imports may appear at top level; found "
                    f"{_describe_statement(node)} (move it inside the function)",
                )
        if not functions:
            self.fail(None, "no function definition found; define exactly one function "
                            f"def <name>({', '.join(self.arguments)})")
        if len(functions) > 1:
            names = ", ".join(f"'{f.name}' (line {f.lineno})" for f in functions)
            self.fail(None, f"found {len(functions)} top-level functions ({names}); define exactly one "
                            "(nested helper functions inside it are fine)")
        if functions:
            self._check_signature(functions[0])
        self._collect_bindings(tree)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                self._check_function_body(node)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self.visit(node)
        return functions[0].name if functions else None

    def _check_signature(self, function: ast.FunctionDef) -> None:
        arguments = function.args
        names = [a.arg for a in arguments.posonlyargs + arguments.args]
        expected = ", ".join(self.arguments)
        if (
            tuple(names) != self.arguments or arguments.vararg or arguments.kwarg or arguments.kwonlyargs
            or arguments.defaults
        ):
            self.fail(function, f"the function must take exactly ({expected}) with no defaults, *args or "
                                f"**kwargs; found ({ast.unparse(arguments)})")
        if function.decorator_list:
            self.fail(function.decorator_list[0], "decorators are not allowed")
        if function.name.startswith("_"):
            self.fail(function, f"function name '{function.name}' must not start with an underscore")
        if function.name in self.module_aliases or function.name in FORBIDDEN_NAMES:
            self.fail(function, f"the function name '{function.name}' would hide a module or builtin; rename it")

    def _collect_bindings(self, tree: ast.Module) -> None:
        # Scope-insensitive on purpose: a name counts as local if it is bound anywhere. That is enough for
        # safety, because the only globals the program can reach are the modules and the safe builtins.
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                self.local_names.add(node.id)
            elif isinstance(node, ast.arg):
                self.local_names.add(node.arg)
            elif isinstance(node, ast.FunctionDef):
                self.local_names.add(node.name)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                self.argument_names.update(a.arg for a in node.args.posonlyargs + node.args.args)
        # Import aliases are registered while visiting imports; pre-register them so use before the import
        # statement's line (inside the function body) still resolves.
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self._register_import(node, report=False)

    def _check_function_body(self, function: ast.FunctionDef) -> None:
        # The signature's annotations and the body are checked; the arguments themselves were checked above.
        for argument in function.args.posonlyargs + function.args.args:
            if argument.annotation:
                self.visit(argument.annotation)
        if function.returns:
            self.visit(function.returns)
        for statement in function.body:
            self.visit(statement)

    # ---- statements --------------------------------------------------------------------------------------

    def generic_visit(self, node: ast.AST) -> None:
        for forbidden, message in FORBIDDEN_STATEMENTS.items():
            if isinstance(node, forbidden):
                self.fail(node, message)
                return
        super().generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:  # nested helpers
        if node.decorator_list:
            self.fail(node.decorator_list[0], "decorators are not allowed")
        if node.name.startswith("__") or node.name in self.module_aliases or node.name in FORBIDDEN_NAMES:
            self.fail(node, f"'{node.name}' cannot be used as a function name")
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:  # arguments of nested helpers and lambdas
        if node.arg.startswith("__") or node.arg in self.module_aliases or node.arg in FORBIDDEN_NAMES:
            self.fail(node, f"'{node.arg}' cannot be used as an argument name")
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self._register_import(node, report=True)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._register_import(node, report=True)

    def _register_import(self, node: ast.Import | ast.ImportFrom, report: bool) -> None:
        def refuse(message: str) -> None:
            self.refused_names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
            if report:
                self.fail(node, message)

        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in IMPORTABLE_MODULES:
                    refuse(f"import of '{alias.name}' is not allowed; {IMPORT_HINT}")
                elif alias.asname:
                    self._bind_module(node, alias.asname, alias.name, refuse)
                else:
                    root = alias.name.split(".")[0]
                    self._bind_module(node, root, root, refuse)
            return
        module = "." * node.level + (node.module or "")
        if node.level or module not in IMPORTABLE_MODULES:
            refuse(f"import from '{module}' is not allowed; {IMPORT_HINT}")
            return
        for alias in node.names:
            if alias.name == "*":
                refuse(f"'from {module} import *' is not allowed; import the module and use {module}.<name>")
                continue
            bound = alias.asname or alias.name
            full = f"{module}.{alias.name}"
            if full in IMPORTABLE_MODULES:
                self._bind_module(node, bound, full, refuse)
                continue
            problem = _module_attribute_problem(module, alias.name)
            if problem:
                refuse(problem)
            elif isinstance(_resolve_module(module).__dict__.get(alias.name), types.ModuleType):
                refuse(f"import of '{full}' is not allowed; {IMPORT_HINT}")
            elif bound in FORBIDDEN_NAMES or bound.startswith("__") or bound in self.module_aliases:
                refuse(f"'{bound}' may not be used as a name")
            else:
                self.local_names.add(bound)  # a value imported by name, e.g. 'from math import log'

    def _bind_module(self, node: ast.AST, name: str, module: str, refuse: Any) -> None:
        if name in ("self",) or name in self.argument_names:
            refuse(f"'{name}' is an argument of the objective and cannot name a module")
            return
        known = self.module_aliases.get(name)
        if known is not None and known != module:
            refuse(f"'{name}' already names the module {known}; use another alias for {module}")
            return
        self.module_aliases[name] = module

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_target(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        target = node.target
        if isinstance(target, ast.Name) and target.id in self.argument_names:
            self.fail(node, f"'{target.id} {_operator(node.op)}= ...' modifies the input tensor in place; "
                            f"write 'x = {target.id} {_operator(node.op)} ...' into a new variable instead")
        self._check_target(target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_target(node.target)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._check_target(target)
        self.generic_visit(node)

    def _check_target(self, target: ast.AST) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._check_target(element)
        elif isinstance(target, ast.Starred):
            self._check_target(target.value)
        elif isinstance(target, ast.Subscript):
            base = target.value
            while isinstance(base, ast.Subscript):
                base = base.value
            if isinstance(base, ast.Name) and base.id in self.argument_names:
                self.fail(target, f"assigning into the input '{base.id}' modifies it in place; "
                                  "compute a new tensor instead (e.g. torch.where)")

    # ---- names and attributes ----------------------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if name in FORBIDDEN_NAMES or name.startswith("__"):
            self.fail(node, f"'{name}' is not allowed in an objective")
        elif name == "print":
            self.fail(node, "print is not available (output is discarded); return the losses tensor instead")
        elif name == "self":
            self.fail(node, "'self' may only be used as self.beta")
        elif name in self.module_aliases:
            if isinstance(node.ctx, ast.Load):
                self.fail(node, f"the module '{name}' may only be used as {name}.<attribute>; modules cannot be "
                                "stored, passed or returned")
            else:
                self.fail(node, f"cannot assign to '{name}': it names the module {self.module_aliases[name]}")
        elif name in self.refused_names:
            pass  # already reported at its import
        elif isinstance(node.ctx, ast.Load) and name not in self.local_names and name not in SAFE_BUILTIN_NAMES:
            self.fail(node, f"name '{name}' is not defined; available are the arguments, your local variables, "
                            "torch, F, math and basic builtins (abs, min, max, float, int, len, range, sum, ...)")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if not isinstance(node.ctx, ast.Load):
            self.fail(node, f"assigning to or deleting attributes ('{ast.unparse(node)}') is not allowed; "
                            "use a local variable")
            return
        chain: list[str] = []
        root: ast.AST = node
        while isinstance(root, ast.Attribute):
            chain.append(root.attr)
            root = root.value
        chain.reverse()
        if isinstance(root, ast.Name) and root.id == "self":
            if chain[0] != "beta":
                self.fail(node, f"'self.{chain[0]}' is not available; the only attribute of self is self.beta")
            elif len(chain) > 1:
                self._check_value_attributes(node, chain[1:])
            return
        if isinstance(root, ast.Name) and root.id in self.module_aliases:
            self._check_module_chain(node, self.module_aliases[root.id], root.id, chain)
            return
        self._check_value_attributes(node, chain)
        self.visit(root)

    def _check_value_attributes(self, node: ast.AST, chain: list[str]) -> None:
        for attribute in chain:
            problem = _attribute_name_problem(attribute)
            if problem:
                self.fail(node, problem)
                return

    def _check_module_chain(self, node: ast.Attribute, module: str, spelled: str, chain: list[str]) -> None:
        # Walk the chain through allowed submodules; the first non-module attribute must be an allowed
        # value, and whatever follows it is checked like any attribute on a value.
        for position, attribute in enumerate(chain):
            problem = _module_attribute_problem(module, attribute, spelled)
            if problem:
                self.fail(node, problem)
                return
            value = _resolve_module(module).__dict__.get(attribute)
            if isinstance(value, types.ModuleType):
                module = value.__name__
                spelled = f"{spelled}.{attribute}"
                if position == len(chain) - 1:
                    self.fail(node, f"the module '{spelled}' may only be used as {spelled}.<function>; modules "
                                    "cannot be stored, passed or returned")
                continue
            self._check_value_attributes(node, chain[position + 1:])
            return


def _module_attribute_problem(module: str, attribute: str, spelled: str | None = None) -> str | None:
    """Why ``module.attribute`` may not be used, or None when it may."""
    spelled = spelled or module
    full = f"{spelled}.{attribute}"
    problem = _attribute_name_problem(attribute, full)
    if problem:
        return problem
    namespace = _resolve_module(module).__dict__
    if attribute not in namespace:
        return f"'{full}' does not exist"
    value = namespace[attribute]
    if isinstance(value, types.ModuleType):
        if value.__name__ in REACHABLE_MODULES:
            return None
        return f"'{full}' is not allowed; the reachable modules are torch, torch.nn.functional (F), " \
               "torch.linalg, torch.special, torch.fft and math"
    if module == "math":
        return None
    if isinstance(value, type):
        if attribute in ALLOWED_TORCH_CLASSES:
            return None
        return f"'{full}' is not allowed: classes and objects other than torch.Tensor, torch.Size, torch.finfo " \
               "and torch.iinfo are not available; use the functional form (torch.* or F.* functions)"
    if isinstance(value, (bool, int, float, str)) or _is_dtype(value):
        return None
    if callable(value):
        return _operation_problem(attribute, full)
    return f"'{full}' is not allowed in an objective"


def _attribute_name_problem(attribute: str, spelled: str | None = None) -> str | None:
    shown = spelled or f".{attribute}"
    if attribute.startswith("_"):
        return f"'{shown}': attributes starting with an underscore are not allowed"
    if attribute in ATTRIBUTE_HINTS:
        return f"'{shown}' is not allowed in an objective: {ATTRIBUTE_HINTS[attribute]}"
    if attribute in FORBIDDEN_ATTRIBUTES or FORBIDDEN_ATTRIBUTE_PATTERN.search(attribute):
        return f"'{shown}' is not allowed in an objective (it reaches files, processes, compilation, global " \
               "state or interpreter internals)"
    if spelled is None:  # an attribute of a value: a tensor method, a tensor property, a list method ...
        return _operation_problem(attribute, shown)
    return None


def _operation_problem(attribute: str, shown: str) -> str | None:
    """Why ``attribute`` (a function of a module, or any attribute of a value) is not a numerical operation an
    objective may use, in words an author can act on; None when it is on the allow-list."""
    if attribute in NUMERICAL_OPERATIONS:
        return None
    if attribute in REFUSAL_HINTS:
        return f"'{shown}' is not allowed in an objective: {REFUSAL_HINTS[attribute]}"
    if attribute.endswith("_"):
        return (f"'{shown}' modifies a tensor in place, which is not allowed in an objective; use the out-of-place "
                f"form ('{attribute[:-1]}', or an operator) and assign the result to a new variable")
    if "sparse" in attribute:
        return f"'{shown}' is not allowed in an objective: sparse tensors are not available; use dense tensors"
    return f"'{shown}' is not on the objective's list of numerical operations; {ALLOWED_HINT}"


def _resolve_module(name: str) -> types.ModuleType:
    if name == "math":
        return math
    import importlib  # the real module, imported here by trusted code only

    return importlib.import_module(name)


def _is_dtype(value: Any) -> bool:
    import torch

    return isinstance(value, torch.dtype)


def _describe_statement(node: ast.AST) -> str:
    text = ast.unparse(node).splitlines()[0] if not isinstance(node, ast.ClassDef) else f"class {node.name}"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"'{text}'"


def _operator(op: ast.operator) -> str:
    return {
        ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
        ast.Pow: "**", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
        ast.LShift: "<<", ast.RShift: ">>",
    }.get(type(op), "?")
