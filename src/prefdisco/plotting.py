"""Drawing figures without pyplot: a new figure, a "no data" panel, and an atomic PNG write.

The discovery run's figures and the judged benchmarks' figures draw through these, so every PNG has the same
resolution and none is ever left half-written.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

log = logging.getLogger(__name__)

DPI = 150


def new_figure(figsize: tuple[float, float], ncols: int = 1) -> tuple[Figure, Any]:
    """A figure with ``ncols`` axes side by side, and the axes."""
    # Figure + FigureCanvasAgg rather than pyplot: no global state, no GUI backend, nothing left open.
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def no_data(ax: Any, message: str, detail: str = "", y: float = 0.55, clear_ticks: bool = True) -> None:
    """Say on the axes why there is nothing to draw (a figure is still written: it is a rule's output)."""
    ax.text(0.5, y, message, ha="center", va="center", fontsize=14, transform=ax.transAxes)
    if detail:
        ax.text(0.5, y - 0.08, detail, ha="center", va="center", fontsize=9, color="dimgray",
                transform=ax.transAxes)
    if clear_ticks:
        ax.set_xticks([])
        ax.set_yticks([])


def save_figure(fig: Figure, path: str | Path, tight: bool = True) -> None:
    """Write the PNG atomically, so a half-written file never satisfies a Snakemake output."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if type(fig.canvas) is FigureCanvasBase:  # a bare Figure(): tight_layout needs a renderer, which Agg gives it
        FigureCanvasAgg(fig)
    if tight:
        fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=DPI)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("wrote %s", path)
