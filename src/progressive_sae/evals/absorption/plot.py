"""Plot of the absorption evaluation: mean absorption per SAE per view, and per class."""

from __future__ import annotations

from pathlib import Path

from progressive_sae.analysis.plotting import new_figure, save_figure
from progressive_sae.evals.absorption.result import AbsorptionResult
from progressive_sae.evals.hierarchy.plot import grouped_bars


def plot_absorption(result: AbsorptionResult, path: str | Path) -> Path:
    """Left: mean absorption fraction (95% CI) per view, one bar per SAE. Right: each scored
    class's absorption fraction with the full dictionary."""
    fig, (left, right) = new_figure(2)
    saes = list(dict.fromkeys(v.sae for v in result.views))
    full_size = {s: max(v.view.granularity for v in result.views if v.sae == s) for s in saes}

    def label(v) -> str:
        return "full" if v.view.granularity == full_size[v.sae] else v.view.label

    labels = list(dict.fromkeys(label(v) for v in result.views))
    nan = (float("nan"),) * 3
    series = {s: [nan] * len(labels) for s in saes}
    for v in result.views:
        e = v.mean_absorption_fraction
        if e is not None:
            series[v.sae][labels.index(label(v))] = (e.value, e.low, e.high)
    grouped_bars(left, labels, series, "mean absorption fraction (lower is better)")
    gated = [p.name for p in result.probes if p.status == "gated"]
    left.set_title(f"Absorption, task {result.task}"
                   + (f" ({len(gated)} classes gated)" if gated else ""))
    classes = result.scored_classes
    per_class = {}
    for v in result.views:
        if v.view.granularity == full_size[v.sae]:
            by_name = {c.name: c.mean_absorption_fraction for c in v.classes}
            per_class[v.sae] = [((by_name.get(n) if by_name.get(n) is not None
                                  else float("nan")),) * 3 for n in classes]
    if classes:
        grouped_bars(right, classes, per_class, "absorption fraction, full dictionary")
    else:
        right.text(0.5, 0.5, "every class gated: nothing scored", ha="center", va="center")
    right.set_title("Per class")
    return save_figure(fig, path)
