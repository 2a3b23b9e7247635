"""Plots of concept erasure: SCR and TPP against latents ablated (full dictionaries) and
against granularity (at one n)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from matplotlib.axes import Axes

from progressive_sae.analysis.plotting import new_figure, save_figure
from progressive_sae.evals.erasure.result import ErasureResult, ErasureScore

LINESTYLES = {"relative": "-", "prefix": "--"}


def _errorbar(ax: Axes, points: list[ErasureScore], x: str, label: str, style: str) -> None:
    points = sorted(points, key=lambda s: getattr(s, x))
    keep = [p for p in points if p.value.value == p.value.value]  # NaN: undefined, not drawn
    if not keep:
        return
    ys = [p.value.value for p in keep]
    lows = [p.value.low if p.value.low == p.value.low else p.value.value for p in keep]
    highs = [p.value.high if p.value.high == p.value.high else p.value.value for p in keep]
    err = [[max(0.0, y - lo) for y, lo in zip(ys, lows)],
           [max(0.0, hi - y) for y, hi in zip(ys, highs)]]
    ax.errorbar([getattr(p, x) for p in keep], ys, yerr=err, marker="o", capsize=3,
                linestyle=style, label=label)


def plot_erasure(result: ErasureResult, path: str | Path, n: int | None = None) -> Path:
    """SCR and TPP vs n at full size (left), and vs G at `n` (default: the middle n) per
    mode (right). Writes a PNG at `path`."""
    metrics = [m for m in ("scr", "tpp") if result.select(m)] or ["scr"]
    fig, axes = new_figure(2 * len(metrics))
    ns = sorted({s.n for s in result.scores})
    n = n if n is not None else (ns[len(ns) // 2] if ns else 0)
    for i, metric in enumerate(metrics):
        scores = result.select(metric)
        full = max((s.granularity for s in scores), default=0)
        by_sae: dict[str, list[ErasureScore]] = defaultdict(list)
        by_view: dict[tuple, list[ErasureScore]] = defaultdict(list)
        largest: dict[str, int] = defaultdict(int)
        for s in scores:
            largest[s.sae] = max(largest[s.sae], s.granularity)
        for s in scores:
            if s.granularity == largest[s.sae]:
                by_sae[s.sae].append(s)
            if s.n == n:
                by_view[(s.sae, s.mode)].append(s)
        left, right = axes[2 * i], axes[2 * i + 1]
        for sae, points in sorted(by_sae.items()):
            _errorbar(left, points, "n", sae, "-")
        left.set_xscale("log")
        left.set_xticks(ns, [str(v) for v in ns])
        left.minorticks_off()
        left.set_xlabel("latents ablated n")
        left.set_title(f"{metric.upper()} (full dictionaries)" if scores
                       else f"{metric.upper()}: gated or not measured")
        for (sae, mode), points in sorted(by_view.items()):
            if mode == "prefix":  # the full dictionary is listed once, under 'relative'
                points = points + [p for p in by_view.get((sae, "relative"), [])
                                   if p.granularity == largest[sae]]
            _errorbar(right, points, "granularity", f"{sae} ({mode})", LINESTYLES[mode])
        right.set_xscale("log", base=2)
        right.set_xlabel("granularity G (first G latents)")
        right.set_title(f"{metric.upper()} at n={n} vs granularity" if full else metric.upper())
        for ax in (left, right):
            ax.set_ylabel(f"{metric.upper()} (higher = better)")
            ax.axhline(0.0, color="grey", linewidth=0.8)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    return save_figure(fig, path)
