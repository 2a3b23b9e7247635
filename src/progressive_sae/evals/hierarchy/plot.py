"""Plot of the hierarchy evaluation: mean gap per SAE per view, and per-edge gaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from progressive_sae.analysis.plotting import new_figure, save_figure
from progressive_sae.evals.hierarchy.result import HierarchyResult


def grouped_bars(ax, groups: list[str], series: dict[str, list[tuple[float, float, float]]],
                 ylabel: str) -> None:
    """Bars of (value, low, high) per group for each series; NaN values are left out."""
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        v = np.array([t[0] for t in values], dtype=float)
        lo = np.array([t[1] for t in values], dtype=float)
        hi = np.array([t[2] for t in values], dtype=float)
        err = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)]).clip(min=0)
        ax.bar(x + (i - (len(series) - 1) / 2) * width, np.nan_to_num(v), width, yerr=err,
               capsize=2, label=name)
    ax.set_xticks(x, groups, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend(fontsize=7)


def plot_hierarchy(result: HierarchyResult, path: str | Path) -> Path:
    """Left: mean absorption gap (95% CI over edges) per view, one bar per SAE. Right: each
    edge's gap at full size."""
    fig, (left, right) = new_figure(2)
    saes = list(dict.fromkeys(v.sae for v in result.views))
    labels = list(dict.fromkeys(v.view.label if v.view.granularity < _full(result, v.sae)
                                else "full" for v in result.views))
    nan = (float("nan"),) * 3
    series: dict[str, list[tuple[float, float, float]]] = {s: [nan] * len(labels) for s in saes}
    for v in result.views:
        label = v.view.label if v.view.granularity < _full(result, v.sae) else "full"
        if v.mean_gap is not None:
            series[v.sae][labels.index(label)] = (v.mean_gap.value, v.mean_gap.low,
                                                  v.mean_gap.high)
    grouped_bars(left, labels, series, "mean absorption gap (lower is better)")
    left.set_title("Absorption gap per granularity")
    full = [v for v in result.views if v.view.granularity == _full(result, v.sae)]
    if full:
        edges = [f"{e.parent}→{e.child}" for e in full[0].edges]
        per_edge = {v.sae: [(e.gap if e.gap is not None else float("nan"),) * 3
                            for e in v.edges] for v in full}
        grouped_bars(right, edges, per_edge, "gap P(fire|p∧¬c) − P(fire|p∧c)")
    right.set_title("Per edge, full dictionary")
    return save_figure(fig, path)


def _full(result: HierarchyResult, sae: str) -> int:
    return max(v.view.granularity for v in result.views if v.sae == sae)
