"""Offline evolutionary proposer: new preference-optimization objectives without an LLM.

An objective is an expression program over the scaled margin ``x = beta * rho``, where
``rho = (policy_chosen - policy_rejected) - (reference_chosen - reference_rejected)`` (``logits`` in the paper's
code). Every per-example loss in the library that depends on nothing but ``x`` (DPO, SLiC, CELL, LRML) is such a
program; batch-statistic objectives (AQL, AQFL, DBAQL), KTO, IPO (which needs ``beta`` itself) and the sign-gated
PADLL/PFL are not.

Genome
    Nested JSON lists, ``[op, *children]``:

    - ``["x"]``, ``["const", c]``
    - unary ``[op, a]`` for op in :data:`UNARY_OPS`
    - binary ``[op, a, b]`` for op in :data:`BINARY_OPS`
    - ``["div", a, c]``: ``a / c`` by a plain number ``c`` (a temperature). Division by a constant only, so it
      can never divide by zero; ``c`` is not a node, so subtree operators never replace it with an expression.
    - ``["blend", g, a, b]``: ``w * a + (1 - w) * b`` with ``w = sigmoid(g)``. LRML is
      ``blend(div(x, 0.05), exp(neg(x)), neg(logsigmoid(x)))``.

    :func:`genome_to_string` gives the canonical text form, e.g. ``neg(logsigmoid(x))``.

Numerics
    ``exp`` is rendered as ``torch.exp(torch.clamp(a, max=30.0))``: ``exp(30)`` is about 1e13, which leaves
    float32 headroom for a following square or product (``exp(50)`` squared overflows float32), and past the clamp
    the gradient is zero rather than inf/NaN. Subtrees without ``x`` are folded into constants, so the rendered code
    never applies a torch function to a Python float. In-process evaluation (:func:`evaluate_genome`) follows the
    rendered code operation for operation.

Search
    Tournament selection over archived records with status ``"ok"``, a fitness (higher is better) and a genome;
    records carrying intervals compete on the lower 95% bound of their fitness (:func:`selection_score`);
    operators are constant mutation (log-space, sign kept), subtree replacement, unary wrapping, operator swap,
    subtree crossover and blending two parents with a new blend node. Offspring are rejected when non-finite on
    ``x`` in [-20, 20], flat, not decreasing on average over [-5, 5], or behaviourally identical (same rounded,
    normalised derivative curve) to anything in the archive, a parent or an earlier proposal of this generation.

Proxy fitness
    :func:`proxy_fitness` scores a genome without any language model, for testing the search itself; see there.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from ..records import OK, TRAIN_FAILED, candidate_id, proposal

logger = logging.getLogger(__name__)

Genome = list  # nested lists, see the module docstring

UNARY_OPS = ("logsigmoid", "sigmoid", "exp", "relu", "square", "abs", "tanh", "neg", "softplus")
BINARY_OPS = ("add", "sub", "mul")
EXP_CLAMP = 30.0

# Constants are kept to 3 significant digits so that code and thoughts stay readable; a mutation that rounds back to
# the old value is simply retried.
CONST_DIGITS = 3
# |denominator| floor for div: a temperature below 0.01 turns the gate into a step function of x.
MIN_DENOMINATOR = 0.01
MAX_NODES = 40

LIBRARY_GENOMES: dict[str, Genome] = {
    "dpo": ["neg", ["logsigmoid", ["x"]]],
    "slic": ["relu", ["sub", ["const", 1.0], ["x"]]],
    "cell": [
        "add",
        ["mul", ["const", 0.5], ["exp", ["neg", ["x"]]]],
        ["mul", ["const", 0.5], ["neg", ["logsigmoid", ["x"]]]],
    ],
    # lrml.py: logistic * (1 - w) + exp * w with w = sigmoid(logits / 0.05), i.e. w weights the exponential loss.
    "lrml": ["blend", ["div", ["x"], 0.05], ["exp", ["neg", ["x"]]], ["neg", ["logsigmoid", ["x"]]]],
}


@dataclass
class EvolutionOptions:
    tournament_size: int = 3
    # Relative weights of the one-parent (mutation) and two-parent (crossover, blend) operator families; they are
    # normalised, so they need not sum to one.
    mutation_rate: float = 0.7
    crossover_rate: float = 0.3
    max_depth: int = 5
    # Attempts per candidate, shared out over the operators (first choice first, then the others as fallbacks),
    # and again for the last-resort random genome.
    max_tries: int = 200


@dataclass(frozen=True, eq=False)
class ExpressionSpace:
    """What the genome's one variable ``x`` means for an objective family, and how a genome becomes its code.

    The operators, simplification and evaluation are shared; a family supplies the library genomes (seed parents),
    the renderer (the contract's function around ``losses = <expression of x>``) and the ranges the behavioural
    checks use: ``grid`` (finite there), ``centre`` (the loss must decrease on average as x grows there) and
    ``signature`` (the derivative curve that tells two losses apart).
    """

    name: str
    variable: str  # x, in words
    library_genomes: dict[str, Genome]
    start: tuple[str, ...]  # library genomes to start from when the archive has no usable parent
    render: Callable[[Genome, str, str | None], str]
    grid: tuple[float, float] = (-20.0, 20.0)
    centre: tuple[float, float] = (-5.0, 5.0)
    signature: tuple[float, float] = (-10.0, 10.0)


# ----------------------------------------------------------------------------------------------------------------
# Genome structure


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Run torch single-threaded for a while, then restore the previous setting.

    Everything here works on tensors of at most a few hundred elements, where intra-op parallelism gains nothing;
    on a busy machine OpenMP workers waiting for a core made each such op take milliseconds (30x slower).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def validate_genome(genome: Any) -> Genome:
    """Return ``genome`` if it is well formed, else raise ValueError naming the first bad node."""

    def check(node: Any) -> None:
        if not isinstance(node, list) or not node or not isinstance(node[0], str):
            raise ValueError(f"not a genome node: {node!r}")
        op, args = node[0], node[1:]
        if op == "x":
            ok = not args
        elif op == "const":
            ok = len(args) == 1 and _is_number(args[0])
        elif op in UNARY_OPS:
            ok = len(args) == 1
        elif op in BINARY_OPS:
            ok = len(args) == 2
        elif op == "div":
            ok = len(args) == 2 and _is_number(args[1]) and args[1] != 0
        elif op == "blend":
            ok = len(args) == 3
        else:
            raise ValueError(f"unknown genome op {op!r}")
        if not ok:
            raise ValueError(f"malformed {op!r} node: {node!r}")
        for child in _children(node):
            check(child)

    check(genome)
    return genome


def genome_to_string(genome: Genome) -> str:
    """Canonical text form, e.g. ``blend(div(x, 0.05), exp(neg(x)), neg(logsigmoid(x)))``."""
    op = genome[0]
    if op == "x":
        return "x"
    if op == "const":
        return repr(float(genome[1]))
    if op == "div":
        return f"div({genome_to_string(genome[1])}, {float(genome[2])!r})"
    return f"{op}({', '.join(genome_to_string(child) for child in genome[1:])})"


def genome_depth(genome: Genome) -> int:
    return 1 + max((genome_depth(child) for child in _children(genome)), default=0)


def genome_size(genome: Genome) -> int:
    return 1 + sum(genome_size(child) for child in _children(genome))


def _children(node: Genome) -> list[Genome]:
    if node[0] in ("x", "const"):
        return []
    if node[0] == "div":
        return [node[1]]
    return list(node[1:])


def _child_indices(node: Genome) -> range:
    if node[0] in ("x", "const"):
        return range(0)
    if node[0] == "div":
        return range(1, 2)
    return range(1, len(node))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _has_x(node: Genome) -> bool:
    return node[0] == "x" or any(_has_x(child) for child in _children(node))


def _node_paths(genome: Genome, prefix: tuple[int, ...] = ()) -> Iterator[tuple[int, ...]]:
    """Paths (tuples of list indices) to every node, root first."""
    yield prefix
    for index in _child_indices(genome):
        yield from _node_paths(genome[index], prefix + (index,))


def _const_paths(genome: Genome) -> list[tuple[int, ...]]:
    """Paths to every mutable number: the value slot of const nodes and the denominator of div nodes."""
    paths = []
    for path in _node_paths(genome):
        node = _get(genome, path)
        if node[0] == "const":
            paths.append(path + (1,))
        elif node[0] == "div":
            paths.append(path + (2,))
    return paths


def _get(genome: Genome, path: Sequence[int]) -> Any:
    for index in path:
        genome = genome[index]
    return genome


def _replace(genome: Genome, path: Sequence[int], value: Any) -> Genome:
    """A copy of ``genome`` with the item at ``path`` replaced (the root when ``path`` is empty)."""
    if not path:
        return copy.deepcopy(value)
    new = copy.deepcopy(genome)
    _get(new, path[:-1])[path[-1]] = copy.deepcopy(value)
    return new


def _round_const(value: float) -> float:
    return float(f"{value:.{CONST_DIGITS}g}")


# ----------------------------------------------------------------------------------------------------------------
# Evaluation, simplification and rendering


def evaluate_genome(genome: Genome, x: torch.Tensor) -> torch.Tensor:
    """Per-example losses of ``genome`` at margins ``x``, computed exactly as the rendered code computes them."""
    op = genome[0]
    if op == "x":
        return x
    if op == "const":
        return torch.full_like(x, float(genome[1]))
    if op == "div":
        return evaluate_genome(genome[1], x) / float(genome[2])
    if op == "blend":
        w = torch.sigmoid(evaluate_genome(genome[1], x))
        return w * evaluate_genome(genome[2], x) + (1 - w) * evaluate_genome(genome[3], x)
    args = [evaluate_genome(child, x) for child in genome[1:]]
    if op in BINARY_OPS:
        a, b = args
        return a + b if op == "add" else a - b if op == "sub" else a * b
    (a,) = args
    if op == "exp":
        return torch.exp(torch.clamp(a, max=EXP_CLAMP))
    if op == "neg":
        return -a
    return _UNARY_TORCH[op](a)


_UNARY_TORCH = {
    "logsigmoid": F.logsigmoid,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "square": torch.square,
    "abs": torch.abs,
    "tanh": torch.tanh,
    "softplus": F.softplus,
}


def simplify_genome(genome: Genome) -> Genome:
    """Fold subtrees without ``x`` into constants and drop double negations.

    Folding is what lets the renderer emit plain tensor expressions: a torch function is then never applied to a
    bare Python number. A folded value that is not finite is kept as such and rejected later by the checks.
    """
    op = genome[0]
    if op in ("x", "const"):
        return copy.deepcopy(genome)
    node = copy.deepcopy(genome)
    for index in _child_indices(node):
        node[index] = simplify_genome(node[index])
    if not _has_x(node):
        with torch.no_grad():
            value = float(evaluate_genome(node, torch.zeros(1, dtype=torch.float64))[0])
        return ["const", float(f"{value:.6g}") if math.isfinite(value) else value]
    if op == "neg" and node[1][0] == "neg":
        return node[1][1]
    return node


# Operator precedence for rendering with as few parentheses as Python needs.
_ADD, _MUL, _UNARY, _ATOM = 1, 2, 3, 4
_TORCH_CALL = {
    "logsigmoid": "F.logsigmoid",
    "sigmoid": "torch.sigmoid",
    "relu": "torch.relu",
    "square": "torch.square",
    "abs": "torch.abs",
    "tanh": "torch.tanh",
    "softplus": "F.softplus",
}


def render_genome(genome: Genome, name: str, comment: str | None = None) -> str:
    """Python source of ``genome`` in the objective contract: one function named ``name``.

    Blend weights become named intermediates (``w1``, ``w2`` ...); everything else is one expression assigned to
    ``losses``. Only ``torch``, ``F``, plain arithmetic and local names are used.
    """
    if not name.isidentifier():
        raise ValueError(f"not a Python identifier: {name!r}")
    weights, expression = render_expression(genome, "logits")
    lines = [
        f"def {name}(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, "
        "reference_rejected_logps):",
    ]
    if comment:
        lines.append(f"    # {comment}")
    lines += [
        "    pi_logratios = policy_chosen_logps - policy_rejected_logps",
        "    ref_logratios = reference_chosen_logps - reference_rejected_logps",
        "    logits = pi_logratios - ref_logratios",
        "    x = self.beta * logits",
        *(f"    {line}" for line in weights),
        f"    losses = {expression}",
        "    return losses",
    ]
    return "\n".join(lines) + "\n"


def render_expression(genome: Genome, like: str) -> tuple[list[str], str]:
    """The blend-weight assignments (``w1 = ...``) and the loss expression of ``genome``; a constant genome
    becomes ``torch.full_like(<like>, c)`` so the losses keep the batch shape. Shared by every family's renderer."""
    weights: list[str] = []
    expression = _render(genome, weights)[0]
    if genome[0] == "const":
        # A constant loss is degenerate and never proposed, but keep the (B,) shape if someone renders one.
        expression = f"torch.full_like({like}, {expression})"
    return weights, expression


def _render(node: Genome, weights: list[str]) -> tuple[str, int]:
    op = node[0]
    if op == "x":
        return "x", _ATOM
    if op == "const":
        return _render_number(float(node[1]))
    if op == "neg":
        return f"-{_wrap(_render(node[1], weights), _UNARY)}", _UNARY
    if op == "exp":
        return f"torch.exp(torch.clamp({_render(node[1], weights)[0]}, max={EXP_CLAMP!r}))", _ATOM
    if op in _TORCH_CALL:
        return f"{_TORCH_CALL[op]}({_render(node[1], weights)[0]})", _ATOM
    if op == "div":
        left = _wrap(_render(node[1], weights), _MUL)
        return f"{left} / {_wrap_right(_render_number(float(node[2])), _MUL)}", _MUL
    if op in BINARY_OPS:
        precedence = _ADD if op in ("add", "sub") else _MUL
        symbol = {"add": "+", "sub": "-", "mul": "*"}[op]
        left = _wrap(_render(node[1], weights), precedence)
        right = _wrap_right(_render(node[2], weights), precedence)
        return f"{left} {symbol} {right}", precedence
    if op == "blend":
        gate = node[1]
        if gate[0] == "const":
            # A constant gate is a fixed mixing weight: write the number, not sigmoid of a Python float.
            weight_text = _render_number(float(f"{1 / (1 + math.exp(-float(gate[1]))):.6g}"))[0]
        else:
            weight_text = f"torch.sigmoid({_render(gate, weights)[0]})"
        a = _wrap_right(_render(node[2], weights), _MUL)
        b = _wrap_right(_render(node[3], weights), _MUL)
        weight = f"w{len(weights) + 1}"
        weights.append(f"{weight} = {weight_text}")
        return f"{weight} * {a} + (1 - {weight}) * {b}", _ADD
    raise ValueError(f"unknown genome op {op!r}")


def _render_number(value: float) -> tuple[str, int]:
    return repr(value), _UNARY if value < 0 else _ATOM


def _wrap(rendered: tuple[str, int], precedence: int) -> str:
    text, own = rendered
    return f"({text})" if own < precedence else text


def _wrap_right(rendered: tuple[str, int], precedence: int) -> str:
    # Right operands need strictly higher precedence (a - (b - c)); unary minus is wrapped too, for readability.
    text, own = rendered
    return f"({text})" if own <= precedence or own == _UNARY else text


PREFERENCE_SPACE = ExpressionSpace(
    name="preference", variable="the margin", library_genomes=LIBRARY_GENOMES, start=("dpo", "slic"),
    render=render_genome,
)


# ----------------------------------------------------------------------------------------------------------------
# Behavioural checks

@functools.lru_cache(maxsize=8)
def _space_grid(space: "ExpressionSpace") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The x grid of a space (step 0.05), the mask of its centre and the mask of its signature points."""
    low, high = space.grid
    grid = torch.linspace(low, high, int(round((high - low) / 0.05)) + 1)
    centre = (grid >= space.centre[0] - 1e-6) & (grid <= space.centre[1] + 1e-6)
    # Signature points: every 0.05 on the signature range; a coarser grid would merge hinges whose kinks differ by
    # less than its step, and such margins are exactly what constant mutation fine-tunes.
    signature = (grid >= space.signature[0] - 1e-6) & (grid <= space.signature[1] + 1e-6)
    return grid, centre, signature


def _loss_and_derivative(genome: Genome, space: "ExpressionSpace | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
    grid = _space_grid(space or PREFERENCE_SPACE)[0]
    x = grid.clone().requires_grad_(True)
    losses = evaluate_genome(genome, x)
    if not losses.requires_grad:  # a constant: no dependence on x at all
        return losses.detach(), torch.zeros_like(grid)
    (derivative,) = torch.autograd.grad(losses.sum(), x)
    return losses.detach(), derivative


def degeneracy_reason(genome: Genome, max_depth: int | None = None,
                      space: "ExpressionSpace | None" = None) -> str | None:
    """Why ``genome`` is not a usable loss of ``space`` (default: preference), or None if it is.

    A preference loss must be finite (with finite gradient) on x in [-20, 20], must not be flat, and must reward
    larger margins: its mean derivative over x in [-5, 5] must be negative. Other spaces name their own ranges.
    """
    space = space or PREFERENCE_SPACE
    try:
        validate_genome(genome)
    except ValueError as error:
        return f"malformed: {error}"
    if max_depth is not None and genome_depth(genome) > max_depth:
        return f"depth {genome_depth(genome)} exceeds {max_depth}"
    if genome_size(genome) > MAX_NODES:
        return f"{genome_size(genome)} nodes exceed {MAX_NODES}"
    if not _has_x(genome):
        return "does not depend on x"
    _, centre_mask, _ = _space_grid(space)
    losses, derivative = _loss_and_derivative(genome, space)
    if not (torch.isfinite(losses).all() and torch.isfinite(derivative).all()):
        return f"non-finite loss or derivative on x in [{space.grid[0]:g}, {space.grid[1]:g}]"
    centre = derivative[centre_mask]
    if (centre.abs() > 1e-6).float().mean() < 0.25:
        return f"derivative is zero almost everywhere on [{space.centre[0]:g}, {space.centre[1]:g}]"
    if not centre.mean() < -1e-3 * centre.abs().mean():
        return f"loss does not decrease on average as {space.variable} grows"
    return None


def behaviour_signature(genome: Genome, space: "ExpressionSpace | None" = None) -> tuple[float, ...]:
    """The derivative curve on the space's signature range ([-10, 10] for preferences), normalised by its largest
    magnitude and rounded to 2 decimals.

    Losses differing by a constant, or by a positive factor (a learning-rate change under Adam), share it.
    """
    _, _, signature_mask = _space_grid(space or PREFERENCE_SPACE)
    _, derivative = _loss_and_derivative(genome, space)
    curve = derivative[signature_mask].double()
    scale = curve.abs().max().item()
    if scale > 0 and math.isfinite(scale):
        curve = curve / scale
    return tuple(round(value, 2) + 0.0 for value in curve.tolist())  # + 0.0 turns -0.0 into 0.0


# ----------------------------------------------------------------------------------------------------------------
# Random genomes and operators


def random_genome(rng: random.Random, max_depth: int) -> Genome:
    """A random (simplified) genome of depth at most ``max_depth``; it may be degenerate."""
    return simplify_genome(_grow(rng, max_depth))


def _random_constant(rng: random.Random) -> float:
    if rng.random() < 0.5:
        return rng.choice([0.5, 1.0, 2.0, 0.1, 0.05, 1.5])
    return _round_const(rng.choice([1.0, 1.0, 1.0, -1.0]) * math.exp(rng.uniform(math.log(0.05), math.log(5.0))))


def _grow(rng: random.Random, depth: int) -> Genome:
    # Leaves get likelier near the depth limit, so small trees dominate and big ones stay possible.
    if depth <= 1 or rng.random() < 0.15 + 0.15 * (5 - min(depth, 5)):
        return ["x"] if rng.random() < 0.75 else ["const", _random_constant(rng)]
    kind = rng.random()
    if kind < 0.45:
        return [rng.choice(UNARY_OPS), _grow(rng, depth - 1)]
    if kind < 0.8:
        return [rng.choice(BINARY_OPS), _grow(rng, depth - 1), _grow(rng, depth - 1)]
    if kind < 0.9:
        return ["div", _grow(rng, depth - 1), _round_const(math.exp(rng.uniform(math.log(0.05), math.log(5.0))))]
    return ["blend", _random_gate(rng, depth - 1), _grow(rng, depth - 1), _grow(rng, depth - 1)]


def _random_gate(rng: random.Random, depth: int) -> Genome:
    # Mostly LRML's sigmoid(x / tau) with a fresh temperature; sometimes an arbitrary small expression.
    if rng.random() < 0.7 or depth < 2:
        return ["div", ["x"], _round_const(math.exp(rng.uniform(math.log(0.02), math.log(2.0))))]
    return _grow(rng, min(depth, 2))


@dataclass
class _Parent:
    id: str
    genome: Genome
    fitness: float | None

    def label(self) -> str:
        fitness = "fitness unknown" if self.fitness is None else f"fitness {self.fitness:.4g}"
        return f"{self.id} ({fitness})"


@dataclass
class _Offspring:
    genome: Genome
    parents: list[_Parent]
    thought: str


def _context(genome: Genome, path: tuple[int, ...]) -> str:
    """Words for where the number at ``path`` (a const value or a div denominator) sits in ``genome``."""
    node_path = path[:-1]
    owner = _get(genome, node_path)
    for i in range(len(node_path)):
        if _get(genome, node_path[:i])[0] == "blend" and node_path[i] == 1:
            if owner[0] == "div" and len(node_path) == i + 1:
                return "the temperature of the blend weight"
            return "the blend weight"
    if owner[0] == "div":
        return "a division temperature"
    if not node_path:
        return "the loss"
    return genome_to_string(_get(genome, node_path[:-1]))


def _mutate_constant(rng: random.Random, parent: _Parent) -> _Offspring | None:
    paths = _const_paths(parent.genome)
    if not paths:
        return None
    path = rng.choice(paths)
    old = float(_get(parent.genome, path))
    if old == 0 or rng.random() < 0.1:
        new = old + rng.gauss(0.0, 0.5)
    else:
        # Log-space step keeps the sign and makes 0.05 -> 0.08 as likely as 5 -> 8.
        new = old * math.exp(rng.gauss(0.0, 0.5))
    if _get(parent.genome, path[:-1])[0] == "div" and abs(new) < MIN_DENOMINATOR:
        new = math.copysign(MIN_DENOMINATOR, new if new else old)
    new = _round_const(new)
    if new == old:
        return None
    genome = _replace(parent.genome, path, new)
    where = _context(parent.genome, path)
    return _Offspring(genome, [parent], f"Mutated the constant {old:g} -> {new:g} in {where} of {parent.label()}")


def _replace_subtree(rng: random.Random, parent: _Parent, max_depth: int) -> _Offspring | None:
    paths = list(_node_paths(parent.genome))
    if len(paths) > 1:
        paths = paths[1:]  # replacing the root would throw the parent away
    path = rng.choice(paths)
    room = max_depth - len(path)
    if room < 1:
        return None
    new_subtree = simplify_genome(_grow(rng, min(room, 3)))
    old_subtree = _get(parent.genome, path)
    genome = _replace(parent.genome, path, new_subtree)
    return _Offspring(
        genome,
        [parent],
        f"Replaced the subtree {genome_to_string(old_subtree)} of {parent.label()} "
        f"with the random subtree {genome_to_string(new_subtree)}",
    )


def _wrap_unary(rng: random.Random, parent: _Parent) -> _Offspring | None:
    path = rng.choice(list(_node_paths(parent.genome)))
    op = rng.choice(UNARY_OPS)
    subtree = _get(parent.genome, path)
    genome = _replace(parent.genome, path, [op, subtree])
    return _Offspring(
        genome, [parent], f"Wrapped the subtree {genome_to_string(subtree)} of {parent.label()} in {op}"
    )


def _swap_operator(rng: random.Random, parent: _Parent) -> _Offspring | None:
    paths = [p for p in _node_paths(parent.genome) if _get(parent.genome, p)[0] in UNARY_OPS + BINARY_OPS]
    if not paths:
        return None
    path = rng.choice(paths)
    node = _get(parent.genome, path)
    family = UNARY_OPS if node[0] in UNARY_OPS else BINARY_OPS
    op = rng.choice([candidate for candidate in family if candidate != node[0]])
    genome = _replace(parent.genome, path, [op, *node[1:]])
    return _Offspring(
        genome, [parent], f"Swapped the operator {node[0]} -> {op} in {genome_to_string(node)} of {parent.label()}"
    )


def _crossover(rng: random.Random, first: _Parent, second: _Parent) -> _Offspring | None:
    paths = list(_node_paths(first.genome))
    if len(paths) > 1:
        paths = paths[1:]
    path = rng.choice(paths)
    donor_path = rng.choice(list(_node_paths(second.genome)))
    old_subtree, donor = _get(first.genome, path), _get(second.genome, donor_path)
    genome = _replace(first.genome, path, donor)
    return _Offspring(
        genome,
        [first, second],
        f"Crossover of {first.label()} and {second.label()}: replaced the subtree {genome_to_string(old_subtree)} "
        f"of {first.id} with {genome_to_string(donor)} from {second.id}",
    )


def _blend_parents(rng: random.Random, first: _Parent, second: _Parent, max_depth: int) -> _Offspring | None:
    gate = _random_gate(rng, max(1, max_depth - 1))
    genome = ["blend", gate, copy.deepcopy(first.genome), copy.deepcopy(second.genome)]
    return _Offspring(
        genome,
        [first, second],
        f"Blended {first.label()} and {second.label()} LRML-style: weight sigmoid({genome_to_string(gate)}) "
        f"on {first.id}'s loss and the rest on {second.id}'s",
    )


_ONE_PARENT = ("mutate_constant", "replace_subtree", "wrap_unary", "swap_operator")
_TWO_PARENT = ("crossover", "blend_parents")


def _apply(operator: str, rng: random.Random, parents: list[_Parent], options: EvolutionOptions) -> _Offspring | None:
    first = _tournament(rng, parents, options.tournament_size)
    if operator == "mutate_constant":
        return _mutate_constant(rng, first)
    if operator == "replace_subtree":
        return _replace_subtree(rng, first, options.max_depth)
    if operator == "wrap_unary":
        return _wrap_unary(rng, first)
    if operator == "swap_operator":
        return _swap_operator(rng, first)
    others = [parent for parent in parents if parent.id != first.id]
    if not others:
        return None
    second = _tournament(rng, others, options.tournament_size)
    if operator == "crossover":
        return _crossover(rng, first, second)
    return _blend_parents(rng, first, second, options.max_depth)


def _tournament(rng: random.Random, parents: list[_Parent], size: int) -> _Parent:
    """The fittest of ``size`` parents drawn without replacement (unknown fitness ranks last; ties at random)."""
    entrants = rng.sample(parents, min(max(1, size), len(parents)))
    return max(entrants, key=lambda p: (p.fitness if p.fitness is not None else -math.inf, rng.random()))


# ----------------------------------------------------------------------------------------------------------------
# Public entry point


def record_genome(record: dict, space: "ExpressionSpace | None" = None) -> Genome | None:
    """The genome of an archive record: its own, else the library genome named by ``library_name``."""
    library = (space or PREFERENCE_SPACE).library_genomes
    genome = record.get("genome")
    if genome is None and record.get("library_name") in library:
        genome = library[record["library_name"]]
    if genome is None:
        return None
    try:
        return validate_genome(copy.deepcopy(genome))
    except ValueError as error:
        logger.warning("archive record %s has a malformed genome, ignored: %s", record.get("id"), error)
        return None


def selection_score(record: dict) -> float | None:
    """What tournaments compare: the lower 95% bound of fitness (seeds x prompts, :mod:`prefdisco.intervals`) where
    the archive has it, so a candidate that was merely lucky on one seed does not out-breed a reliably good one;
    the bare fitness in archives written before intervals existed."""
    low = ((record.get("intervals") or {}).get("fitness") or {}).get("low")
    if _is_number(low) and math.isfinite(low):
        return float(low)
    fitness = record.get("fitness")
    return float(fitness) if _is_number(fitness) else None


def _usable_parents(archive: list[dict], space: "ExpressionSpace") -> list[_Parent]:
    parents = []
    for record in archive:
        score = selection_score(record)
        if record.get("status") != OK or score is None:
            continue
        genome = record_genome(record, space)
        if genome is not None:
            parents.append(_Parent(str(record["id"]), genome, score))
    return parents


def propose_evolution(
    archive: list[dict],
    generation: int,
    population: int,
    seed: int,
    options: EvolutionOptions = EvolutionOptions(),
    space: ExpressionSpace | None = None,
) -> list[dict]:
    """Propose ``population`` new objectives by evolving the archive's genomes; deterministic in its arguments.

    Parents are archive records with status "ok", a finite fitness (higher is better) and a genome (their own or
    their library objective's). With none, the search starts from the space's start genomes (DPO and SLiC for
    preferences), fitness unknown. Records without a genome (LLM-written code) cannot be parents and are not used
    for duplicate detection. ``space`` is the objective family's expression space (default: preference).
    """
    space = space or PREFERENCE_SPACE
    if options.max_depth < 2:
        raise ValueError("max_depth must be at least 2: no depth-1 genome is a preference loss")
    if population < 0:
        raise ValueError(f"population must be non-negative, got {population}")
    with _single_thread():
        return _propose(archive, generation, population, seed, options, space)


def _propose(
    archive: list[dict], generation: int, population: int, seed: int, options: EvolutionOptions,
    space: ExpressionSpace,
) -> list[dict]:
    rng = random.Random(seed * 1000003 + generation)
    parents = _usable_parents(archive, space)
    if not parents:
        parents = [_Parent(f"library:{name}", copy.deepcopy(space.library_genomes[name]), None) for name in space.start]
        logger.info("generation %d: no usable parents in the archive, starting from %s", generation,
                    " and ".join(space.start))

    seen: set[tuple[float, ...]] = set()
    for genome in [record_genome(record, space) for record in archive] + [parent.genome for parent in parents]:
        if genome is not None and degeneracy_reason(genome, space=space) is None:
            seen.add(behaviour_signature(genome, space))

    two_parent_share = options.crossover_rate / max(options.mutation_rate + options.crossover_rate, 1e-12)
    proposals = []
    for k in range(population):
        offspring, operator = _breed(rng, parents, options, seen, two_parent_share, space)
        seen.add(behaviour_signature(offspring.genome, space))
        name = f"evolved_g{generation}_k{k}"
        expression = genome_to_string(offspring.genome)
        thought = f"{offspring.thought}, giving {expression}."
        proposals.append(
            proposal(
                generation,
                k,
                name=name,
                thought=thought,
                code=space.render(offspring.genome, name, f"evolved ({operator}): {expression}"),
                genome=offspring.genome,
                parents=[parent.id for parent in offspring.parents],
                proposer={"backend": "evolution", "model": None, "temperature": None, "seed": seed},
            )
        )
        logger.debug("g%d-k%d via %s: %s", generation, k, operator, expression)
    return proposals


def _breed(
    rng: random.Random,
    parents: list[_Parent],
    options: EvolutionOptions,
    seen: set[tuple[float, ...]],
    two_parent_share: float,
    space: ExpressionSpace | None = None,
) -> tuple[_Offspring, str]:
    """One accepted offspring: the drawn operator first, then the others in random order, then a random genome."""
    family, rest = (_TWO_PARENT, _ONE_PARENT) if rng.random() < two_parent_share else (_ONE_PARENT, _TWO_PARENT)
    first = rng.choice(family)
    fallbacks = [op for op in family + rest if op != first]
    rng.shuffle(fallbacks)
    order = [first, *fallbacks]
    tries = max(1, options.max_tries // len(order))
    rejected: dict[str, int] = {}
    for operator in order:
        for _ in range(tries):
            offspring = _apply(operator, rng, parents, options)
            if offspring is None:
                continue
            offspring.genome = simplify_genome(offspring.genome)
            reason = _rejection(offspring.genome, options.max_depth, seen, space)
            if reason is None:
                return offspring, operator
            rejected[reason] = rejected.get(reason, 0) + 1
        logger.debug("operator %s found no acceptable offspring in %d tries", operator, tries)
    for _ in range(max(1, options.max_tries)):
        genome = random_genome(rng, options.max_depth)
        if _rejection(genome, options.max_depth, seen, space) is None:
            logger.info("all operators failed (%s); proposing a random genome", rejected)
            return _Offspring(genome, [], "No operator produced a new valid loss, so drew a random genome"), "random"
    raise RuntimeError(f"could not produce a new valid genome; rejections: {rejected}")


def _rejection(genome: Genome, max_depth: int, seen: set[tuple[float, ...]],
               space: ExpressionSpace | None = None) -> str | None:
    reason = degeneracy_reason(genome, max_depth, space)
    if reason is None and behaviour_signature(genome, space) in seen:
        reason = "behaves like an archived, parent or already proposed loss"
    return reason


# ----------------------------------------------------------------------------------------------------------------
# Proxy fitness: a cheap, model-free stand-in for "train with this loss, then evaluate"


@dataclass(frozen=True)
class ProxyTask:
    """A log-linear policy over a fixed set of responses, trained offline on noisy Bradley-Terry preferences.

    Responses have random features phi; a hidden true reward is r = phi @ w_true (unit variance). The policy is
    log pi_theta(y) = log_softmax(phi @ theta)(y); the reference has random theta_ref. Training pairs are drawn from
    the reference and labelled by the Bradley-Terry model with reward ``label_scale * r``.

    The defaults make the labels noisy and the pairs few (32 in 8 dimensions), the regime where DPO is known to
    overfit (Azar et al., 2023): there DPO scores below the untrained reference (-0.54 vs -0.09), SLiC about the
    same as the reference, a hinge with margin 0.5 about 0.39, and the exact optimum is 0.71.
    """

    n_responses: int = 64
    dim: int = 8
    n_pairs: int = 32
    label_scale: float = 1.0
    beta: float = 0.5
    steps: int = 150
    lr: float = 0.2
    seeds: tuple[int, ...] = (0, 1)


def proxy_fitness(genome: Genome, task: ProxyTask = ProxyTask()) -> float:
    """Score a loss genome by the KL-regularised reward its trained policy attains; higher is better.

    For each task seed the policy starts at the reference and takes ``steps`` Adam steps on the mean loss of
    ``x = beta * rho`` over the training pairs. The score is ``E_pi[r] - (beta / label_scale) * KL(pi || pi_ref)``,
    averaged over seeds: the objective whose optimum, ``pi ~ pi_ref * exp(label_scale * r / beta)``, is exactly what
    DPO's derivation targets with these labels, so no loss is favoured by construction. With few noisy pairs,
    losses differ in how well they estimate the reward direction and how far they let the policy drift from the
    reference: the trade-off the paper's benchmarks (reward vs KL, MT-Bench) measure. Deterministic. Returns -inf
    if training diverges. Costs about 40 ms.
    """
    with _single_thread():
        return _proxy_fitness(genome, task)


def _proxy_fitness(genome: Genome, task: ProxyTask) -> float:
    features, reward, theta_ref, pair_features = _proxy_data(task)
    # rho = (log pi(c) - log pi(r)) - (log ref(c) - log ref(r)) = (phi_c - phi_r) @ (theta - theta_ref): the
    # softmax normalisers cancel, so training needs only the feature differences. All task seeds train at once
    # (leading dimension), with hand-written Adam because torch.optim's per-step overhead dominated at this size.
    delta = torch.zeros_like(theta_ref, requires_grad=True)
    first_moment = torch.zeros_like(theta_ref)
    second_moment = torch.zeros_like(theta_ref)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, task.steps + 1):
        rho = torch.einsum("spd,sd->sp", pair_features, delta)
        loss = evaluate_genome(genome, task.beta * rho).mean(dim=1).sum()  # seeds are independent problems
        if not loss.requires_grad:  # a constant loss: nothing to train
            break
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            first_moment.mul_(beta1).add_(grad, alpha=1 - beta1)
            second_moment.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step_size = task.lr / (1 - beta1**step)
            denominator = (second_moment / (1 - beta2**step)).sqrt().add_(eps)
            delta.addcdiv_(first_moment, denominator, value=-step_size)
    with torch.no_grad():
        ref_logp = torch.log_softmax(torch.einsum("snd,sd->sn", features, theta_ref), dim=1)
        logp = torch.log_softmax(torch.einsum("snd,sd->sn", features, theta_ref + delta), dim=1)
        probs = logp.exp()
        kl = (probs * (logp - ref_logp)).sum(dim=1)
        scores = (probs * reward).sum(dim=1) - (task.beta / task.label_scale) * kl
    score = scores.mean().item()
    return score if math.isfinite(score) else -math.inf


@functools.lru_cache(maxsize=8)
def _proxy_data(task: ProxyTask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per task seed S: features (S, N, d), true rewards (S, N), reference parameters (S, d) and
    chosen-minus-rejected pair features (S, P, d). Cached and never modified in place."""
    all_features, rewards, theta_refs, pair_features = [], [], [], []
    for task_seed in task.seeds:
        generator = torch.Generator().manual_seed(task_seed)
        features = torch.randn(task.n_responses, task.dim, generator=generator)
        reward = features @ torch.randn(task.dim, generator=generator)
        reward = (reward - reward.mean()) / reward.std()
        theta_ref = 0.5 * torch.randn(task.dim, generator=generator)
        ref_probs = torch.softmax(features @ theta_ref, dim=0)
        pairs = torch.multinomial(ref_probs, 2 * task.n_pairs, replacement=True, generator=generator)
        first, second = pairs[: task.n_pairs], pairs[task.n_pairs :]
        prefer_first = torch.rand(task.n_pairs, generator=generator) < torch.sigmoid(
            task.label_scale * (reward[first] - reward[second])
        )
        chosen = torch.where(prefer_first, first, second)
        rejected = torch.where(prefer_first, second, first)
        all_features.append(features)
        rewards.append(reward)
        theta_refs.append(theta_ref)
        pair_features.append(features[chosen] - features[rejected])
    return torch.stack(all_features), torch.stack(rewards), torch.stack(theta_refs), torch.stack(pair_features)


def run_proxy_search(
    method: str,
    seed: int,
    generations: int = 5,
    population: int = 6,
    options: EvolutionOptions = EvolutionOptions(),
    task: ProxyTask = ProxyTask(),
) -> list[dict]:
    """Run ``generations x population`` candidates of ``"evolution"`` or ``"random"`` search under proxy fitness.

    Returns the archive of evaluated records (the candidates only; the library seeds are not evaluated, so both
    methods spend the same budget). Random search draws non-degenerate random genomes of the same maximum depth.
    """
    archive: list[dict] = []
    rng = random.Random(seed * 1000003 + 7919)
    for generation in range(generations):
        if method == "evolution":
            proposals = propose_evolution(archive, generation, population, seed, options)
        elif method == "random":
            proposals = []
            for k in range(population):
                genome = random_genome(rng, options.max_depth)
                while degeneracy_reason(genome, options.max_depth) is not None:
                    genome = random_genome(rng, options.max_depth)
                proposals.append({"id": candidate_id(generation, k), "generation": generation, "genome": genome})
        else:
            raise ValueError(f"unknown search method {method!r}")
        for offspring in proposals:
            fitness = proxy_fitness(offspring["genome"], task)
            ok = math.isfinite(fitness)
            archive.append(
                {
                    "id": offspring["id"],
                    "generation": generation,
                    "genome": offspring["genome"],
                    "status": OK if ok else TRAIN_FAILED,
                    "fitness": fitness if ok else None,
                }
            )
    return archive
