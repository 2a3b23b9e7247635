"""How the three fidelity metrics agree (the paper's appendix): Pearson and Spearman
correlations between FVU, recaptured LM loss CE_clean/CE_spliced and RSA over every scored
point of a run, and one scatter plot per pair coloured by SAE family.

Each (SAE, G, mode) counts once, however many series of a run list it. A point lacking a
metric (no LM, so no CE; or NaN) is left out of the pairs that need that metric, and the
result says how many were. A correlation is undefined (null in JSON) with fewer than 3
points or when one side is constant.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from progressive_sae.analysis.frontier import FrontierPoint
from progressive_sae.analysis.plotting import new_figure, save_figure
from progressive_sae.errors import PSAEError

CORRELATED = ("fvu", "ce_ratio", "rsa")
"""The metrics compared, in the order of their pairs."""
MIN_POINTS = 3
"""Fewest points a correlation is reported for."""
SHORT_NAMES = {"fvu": "FVU", "ce_ratio": "CE_clean/CE_spliced", "rsa": "RSA"}
AXIS_LABELS = {"fvu": "FVU (lower is better)",
               "ce_ratio": "CE_clean/CE_spliced (higher is better)",
               "rsa": "RSA (higher is better)"}


def series_family(series: str) -> str:
    """The SAE family of a series label: 'sparsity: Matryoshka @256' → 'Matryoshka'."""
    family = re.sub(r"^(sparsity|scaling): ", "", series)
    return re.sub(r" @\d+$", "", family)


@dataclass
class PairCorrelation:
    """The correlation of two metrics over the points that have both."""

    x: str
    """First metric (a Fidelity field)."""
    y: str
    """Second metric."""
    n: int
    """Points with both metrics finite."""
    pearson: float | None
    """Pearson r (None when undefined)."""
    pearson_p: float | None
    """Two-sided p-value of r."""
    spearman: float | None
    """Spearman ρ (None when undefined)."""
    spearman_p: float | None
    """Two-sided p-value of ρ."""

    def describe(self) -> str:
        """One line such as 'FVU vs RSA: Spearman ρ = -0.91 (p = 2e-09), Pearson r = …'."""
        names = f"{SHORT_NAMES.get(self.x, self.x)} vs {SHORT_NAMES.get(self.y, self.y)}"
        if self.spearman is None and self.pearson is None:
            return f"{names}: undefined (n = {self.n})"
        return (f"{names}: Spearman ρ = {_fmt(self.spearman)} (p = {_fmt_p(self.spearman_p)}),"
                f" Pearson r = {_fmt(self.pearson)} (p = {_fmt_p(self.pearson_p)}), n = {self.n}")


@dataclass
class ScoredPoint:
    """One distinct scored SAE at one granularity, with the metrics compared."""

    sae: str
    family: str
    granularity: int
    values: dict[str, float | None]
    """Each metric of CORRELATED; None when missing or not finite."""


@dataclass
class CorrelationResult:
    """Correlations between every pair of CORRELATED over a run's scored points."""

    points: list[ScoredPoint]
    """The distinct points used."""
    duplicates: int
    """Points dropped because the same (SAE, G, mode) was already counted."""
    missing: dict[str, int]
    """Per metric, how many points lack it (left out of that metric's pairs)."""
    pairs: list[PairCorrelation] = field(default_factory=list)

    def pair(self, x: str, y: str) -> PairCorrelation:
        for p in self.pairs:
            if {p.x, p.y} == {x, y}:
                return p
        raise PSAEError(f"metric pair ({x!r}, {y!r}): expected two of {list(CORRELATED)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (undefined values are None, never NaN)."""
        return {"metrics": list(CORRELATED), "n_points": len(self.points),
                "duplicates": self.duplicates, "missing": dict(self.missing),
                "pairs": [asdict(p) for p in self.pairs],
                "points": [asdict(p) for p in self.points]}

    def describe(self) -> list[str]:
        """One line per pair, then what was left out."""
        lines = [p.describe() for p in self.pairs]
        left = ", ".join(f"{n} lack {SHORT_NAMES[m]}" for m, n in self.missing.items() if n)
        lines.append(f"{len(self.points)} distinct points"
                     + (f" ({left})" if left else "")
                     + (f"; {self.duplicates} repeated points counted once"
                        if self.duplicates else ""))
        return lines


def metric_correlations(
    points: Iterable[FrontierPoint], family: Callable[[str], str] = series_family
) -> CorrelationResult:
    """Pearson and Spearman correlations of FVU, CE_clean/CE_spliced and RSA, pairwise,
    over the distinct (SAE, G, mode) of `points`; `family` maps a series to its colour."""
    scored, seen, duplicates = [], set(), 0
    for p in points:
        key = (p.sae, p.fidelity.granularity, p.fidelity.mode)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        scored.append(ScoredPoint(p.sae, family(p.series), p.fidelity.granularity,
                                  {m: _finite(p.value(m)) for m in CORRELATED}))
    missing = {m: sum(s.values[m] is None for s in scored) for m in CORRELATED}
    result = CorrelationResult(scored, duplicates, missing)
    result.pairs = [_correlate(scored, x, y) for x, y in combinations(CORRELATED, 2)]
    return result


def _correlate(points: Sequence[ScoredPoint], x: str, y: str) -> PairCorrelation:
    from scipy import stats

    both = [(p.values[x], p.values[y]) for p in points
            if p.values[x] is not None and p.values[y] is not None]
    n = len(both)
    if n < MIN_POINTS:
        return PairCorrelation(x, y, n, None, None, None, None)
    a, b = (np.array(v, dtype=np.float64) for v in zip(*both))
    if np.ptp(a) == 0 or np.ptp(b) == 0:  # a constant side has no correlation
        return PairCorrelation(x, y, n, None, None, None, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-constant input warnings: NaN is handled
        r = stats.pearsonr(a, b)
        rho = stats.spearmanr(a, b)
    return PairCorrelation(x, y, n, _finite(r.statistic), _finite(r.pvalue),
                           _finite(rho.statistic), _finite(rho.pvalue))


def _finite(value: object) -> float | None:
    if value is None:
        return None
    value = float(value)  # type: ignore[arg-type]
    return value if math.isfinite(value) else None


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:+.3f}"


def _fmt_p(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.2g}"


def plot_metric_correlations(
    result_or_points: CorrelationResult | Iterable[FrontierPoint], path: str | Path
) -> Path:
    """One scatter per metric pair, coloured by SAE family, r and ρ in each title."""
    result = (result_or_points if isinstance(result_or_points, CorrelationResult)
              else metric_correlations(result_or_points))
    fig, axes = new_figure(len(result.pairs))
    families = list(dict.fromkeys(p.family for p in result.points))
    palette = matplotlib.colormaps["tab10"].colors
    for ax, pair in zip(axes, result.pairs):
        for i, fam in enumerate(families):
            xy = [(p.values[pair.x], p.values[pair.y]) for p in result.points
                  if p.family == fam and p.values[pair.x] is not None
                  and p.values[pair.y] is not None]
            if xy:
                ax.scatter(*zip(*xy), s=14, alpha=0.8, label=fam,
                           color=palette[i % 10], marker="os^Dv"[(i // 10) % 5])
        if pair.n == 0:
            ax.text(0.5, 0.5, "no points have both metrics", ha="center", va="center",
                    transform=ax.transAxes)
        for metric, set_scale in ((pair.x, ax.set_xscale), (pair.y, ax.set_yscale)):
            if metric == "fvu" and pair.n and all(
                    p.values["fvu"] > 0 for p in result.points if p.values["fvu"] is not None):
                set_scale("log")
        ax.set_xlabel(AXIS_LABELS[pair.x])
        ax.set_ylabel(AXIS_LABELS[pair.y])
        ax.set_title(f"ρ = {_fmt(pair.spearman)}, r = {_fmt(pair.pearson)} (n = {pair.n})",
                     fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:  # the first panel may have no points when CE is missing
        if not handles:
            handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)),
                   fontsize=7)
    return save_figure(fig, path)


def correlation_files(
    points: Iterable[FrontierPoint], out: str | Path
) -> tuple[CorrelationResult, list[Path]]:
    """The result, written as correlation.json + metric_correlation.png in the folder `out`."""
    from progressive_sae.atomic import write_json_atomic

    out = Path(out)
    result = metric_correlations(points)
    data = out / "correlation.json"
    write_json_atomic(data, result.to_dict())
    return result, [data, plot_metric_correlations(result, out / "metric_correlation.png")]
