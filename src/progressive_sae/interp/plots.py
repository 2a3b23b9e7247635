"""Score distributions per granularity bucket, per frequency quantile and per SAE.

One PNG per method and view, one panel per interpreter; the random control is drawn like
any other SAE (grey) so every trained SAE can be read against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from progressive_sae.analysis.plotting import new_figure, save_figure
from progressive_sae.interp.scoring import LatentResult

CONTROL = "random"
LIMITS = {"simulation": (-0.5, 1.05), "fuzzing": (0.0, 1.05), "detection": (0.0, 1.05)}


def _values(rows: Sequence[LatentResult], method: str, **match: object) -> list[float]:
    out = []
    for r in rows:
        if r.skipped is None and all(getattr(r, k) == v for k, v in match.items()):
            value = r.value(method)
            if value is not None:
                out.append(value)
    return out


def _order(rows: Sequence[LatentResult], attr: str) -> list:
    seen = list(dict.fromkeys(getattr(r, attr) for r in rows))
    if attr == "sae" and CONTROL in seen:  # the control goes last
        seen = [s for s in seen if s != CONTROL] + [CONTROL]
    if attr == "bucket":
        seen.sort(key=lambda b: int(b.strip("[").split(",")[0]))
    return seen


def _boxes(ax, groups: list[list[float]], labels: list[str], colors: list[str]) -> None:
    positions = np.arange(len(groups))
    filled = [g if g else [np.nan] for g in groups]
    parts = ax.boxplot(filled, positions=positions, widths=0.6, patch_artist=True,
                       showmeans=True)
    for patch, color in zip(parts["boxes"], colors):
        patch.set_facecolor(color)
        patch.set_alpha(0.6)
    ax.set_xticks(positions, [f"{lab}\n(n={len(g)})" for lab, g in zip(labels, groups)],
                  fontsize=7, rotation=20)


def _color(sae: str, saes: list[str]) -> str:
    if sae == CONTROL:
        return "0.6"
    return f"C{saes.index(sae) % 10}"


def plot_by_bucket(rows: Sequence[LatentResult], method: str, path: str | Path) -> Path:
    interpreters, saes = _order(rows, "interpreter"), _order(rows, "sae")
    fig, axes = new_figure(max(1, len(interpreters)))
    for ax, interpreter in zip(axes, interpreters):
        groups, labels, colors = [], [], []
        for sae in saes:
            for bucket in _order([r for r in rows if r.sae == sae], "bucket"):
                groups.append(_values(rows, method, sae=sae, interpreter=interpreter,
                                      bucket=bucket))
                labels.append(f"{sae} {bucket}")
                colors.append(_color(sae, saes))
        _boxes(ax, groups, labels, colors)
        ax.set_title(f"{method} by granularity bucket — {interpreter}", fontsize=9)
        ax.set_ylabel(method)
        ax.set_ylim(*LIMITS[method])
    return save_figure(fig, path)


def plot_by_quantile(rows: Sequence[LatentResult], method: str, path: str | Path) -> Path:
    interpreters, saes = _order(rows, "interpreter"), _order(rows, "sae")
    fig, axes = new_figure(max(1, len(interpreters)))
    for ax, interpreter in zip(axes, interpreters):
        for sae in saes:
            for style, bucket in zip(("-", "--", ":", "-."),
                                     _order([r for r in rows if r.sae == sae], "bucket")):
                quantiles = sorted({r.quantile for r in rows if r.sae == sae
                                    and r.bucket == bucket})
                means = [np.mean(v) if (v := _values(rows, method, sae=sae, bucket=bucket,
                                                     interpreter=interpreter, quantile=q))
                         else np.nan for q in quantiles]
                ax.plot(quantiles, means, style, marker="o", color=_color(sae, saes),
                        label=f"{sae} {bucket}")
        ax.set_title(f"{method} by frequency quantile — {interpreter}", fontsize=9)
        ax.set_xlabel("frequency quantile (0 = rarest)")
        ax.set_ylabel(f"mean {method}")
        ax.set_ylim(*LIMITS[method])
        ax.legend(fontsize=6)
    return save_figure(fig, path)


def plot_by_sae(rows: Sequence[LatentResult], method: str, path: str | Path) -> Path:
    interpreters, saes = _order(rows, "interpreter"), _order(rows, "sae")
    fig, axes = new_figure(max(1, len(interpreters)))
    for ax, interpreter in zip(axes, interpreters):
        groups = [_values(rows, method, sae=sae, interpreter=interpreter) for sae in saes]
        _boxes(ax, groups, saes, [_color(s, saes) for s in saes])
        ax.set_title(f"{method} per SAE — {interpreter}", fontsize=9)
        ax.set_ylabel(method)
        ax.set_ylim(*LIMITS[method])
    return save_figure(fig, path)


def write_plots(rows: Sequence[LatentResult], methods: Sequence[str], folder: str | Path
                ) -> dict[str, str]:
    """Every view of every method: name ('simulation_by_bucket', …) → PNG path."""
    folder = Path(folder)
    out = {}
    for method in methods:
        for view, plot in (("by_bucket", plot_by_bucket), ("by_quantile", plot_by_quantile),
                           ("by_sae", plot_by_sae)):
            name = f"{method}_{view}"
            out[name] = str(plot(rows, method, folder / f"{name}.png"))
    return out
