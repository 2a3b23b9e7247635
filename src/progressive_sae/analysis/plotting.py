"""Shared matplotlib helpers for the analyses: Agg-rendered figures, atomic PNG writes.

Figures are built with `matplotlib.figure.Figure` directly rather than pyplot, so no
global figure registry or interactive backend is involved (safe in servers and threads).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from progressive_sae.atomic import write_bytes_atomic

PANEL_SIZE = (6.0, 4.5)
"""Width and height in inches of one panel."""
DPI = 120


def new_figure(ncols: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure with `ncols` side-by-side panels of PANEL_SIZE each."""
    fig = Figure(figsize=(PANEL_SIZE[0] * ncols, PANEL_SIZE[1]), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # attach the Agg canvas explicitly: rendering never touches pyplot
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write `fig` as a PNG at `path` (parents created); a crash leaves no partial file."""
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def log_uniform_indices(n: int, max_points: int) -> np.ndarray:
    """At most `max_points` sorted, distinct indices into 0..n-1, evenly spaced in log(rank).

    A rank curve drawn on log axes needs few points at the tail, so this keeps the
    head exactly and thins the tail; first and last index are always kept.
    """
    if n <= max_points:
        return np.arange(n)
    ranks = np.unique(np.round(np.geomspace(1, n, max_points)).astype(np.int64))
    return ranks - 1
