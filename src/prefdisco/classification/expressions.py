"""The evolutionary proposer's expression space for classification objectives.

The genome's variable ``x`` is the log-probability the classifier gives the target class,
``x = log_softmax(logits)[target]`` (at most 0; 0 is a perfect prediction). Cross-entropy is ``neg(x)``, the focal
loss ``mul(neg(x), square(sub(1, exp(x))))``; every per-example loss that depends only on the target's probability
is a genome, while label smoothing and losses that look at the other classes' scores are not (they take part as
code, like KTO among preference objectives). The operators, simplification and checks are the shared ones of
:mod:`prefdisco.proposers.evolution`, on x in [-20, 0]: a loss must be finite there and must decrease on average
as x grows over [-5, 0].
"""

from __future__ import annotations

from prefdisco.proposers.evolution import ExpressionSpace, Genome, render_expression

LIBRARY_GENOMES: dict[str, Genome] = {
    "cross_entropy": ["neg", ["x"]],
    "focal": ["mul", ["neg", ["x"]], ["square", ["sub", ["const", 1.0], ["exp", ["x"]]]]],
}


def render_classification(genome: Genome, name: str, comment: str | None = None) -> str:
    """Python source of ``genome`` in the classification contract: one function ``name(logits, targets)``."""
    if not name.isidentifier():
        raise ValueError(f"not a Python identifier: {name!r}")
    weights, expression = render_expression(genome, "x")
    lines = [f"def {name}(logits, targets):"]
    if comment:
        lines.append(f"    # {comment}")
    lines += [
        "    x = F.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1)).squeeze(1)",
        *(f"    {line}" for line in weights),
        f"    losses = {expression}",
        "    return losses",
    ]
    return "\n".join(lines) + "\n"


CLASSIFICATION_SPACE = ExpressionSpace(
    name="classification", variable="the target's log-probability", library_genomes=LIBRARY_GENOMES,
    start=("cross_entropy", "focal"), render=render_classification,
    grid=(-20.0, 0.0), centre=(-5.0, 0.0), signature=(-10.0, 0.0),
)
