"""Dictionary power laws (SPEC §4.3): rank curves of an SAE's statistics and log-log fits.

For a statistic sorted in decreasing order, value ≈ C · rank^(-exponent); the fit is the
least-squares line of log(value) on log(rank). The extreme ranks usually bend away from
the line (a flat head, a collapsing tail), so every statistic is also fitted on a central
range of ranks, `DEFAULT_CENTRAL` unless chosen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from progressive_sae.analysis.plotting import log_uniform_indices, new_figure, save_figure
from progressive_sae.errors import PSAEError
from progressive_sae.progressive import LatentStatistics
from progressive_sae.sae.base import SparseAutoencoder

DEFAULT_CENTRAL: tuple[float, float] = (0.05, 0.5)
"""Central range: ranks r with lo·n < r ≤ hi·n of the n positive values."""
MAX_CURVE_POINTS = 512
"""Stored rank-curve points per statistic (log-uniform in rank), to keep results small."""
EIGENVALUE_RTOL = 1e-12
"""Eigenvalues below this share of the largest are rounding noise (rank-deficient W_dec)."""
STATISTICS = ("decoder_eigenvalues", "mean_sq", "frequency")
LABELS = {
    "decoder_eigenvalues": "eigenvalues of cov(W_dec)",
    "mean_sq": "E[z²]",
    "frequency": "firing frequency",
}

ArrayLike = Sequence[float] | np.ndarray | torch.Tensor


@dataclass
class PowerLawFit:
    """value ≈ exp(log_intercept) · rank^(-exponent), fitted in log-log space."""

    exponent: float
    """Decay exponent: minus the log-log slope (positive for a decaying curve)."""
    log_intercept: float
    """ln C: the fitted log value at rank 1."""
    r2: float
    """Coefficient of determination of the log-log fit."""
    n_points: int
    """Number of ranks used by the fit."""
    rank_range: tuple[int, int]
    """First and last rank (1-based, inclusive) used by the fit."""

    def predict(self, rank: np.ndarray | float) -> np.ndarray | float:
        """Fitted value at the given rank(s)."""
        return np.exp(self.log_intercept) * np.power(rank, -self.exponent)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exponent": self.exponent, "log_intercept": self.log_intercept, "r2": self.r2,
            "n_points": self.n_points, "rank_range": list(self.rank_range),
        }


@dataclass
class StatisticPowerLaw:
    """One statistic's sorted curve with its full-range and central-range fits."""

    full: PowerLawFit
    """Fit over every positive value."""
    central: PowerLawFit
    """Fit over the central range of ranks."""
    n_values: int
    """Number of positive values (the length of the full sorted curve)."""
    ranks: list[int]
    """Ranks (1-based) of the stored curve points, log-uniformly thinned."""
    values: list[float]
    """Sorted values at `ranks`."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "full": self.full.to_dict(), "central": self.central.to_dict(),
            "n_values": self.n_values, "ranks": list(self.ranks), "values": list(self.values),
        }


@dataclass
class DictionaryPowerLaw:
    """Power-law fits of an SAE's decoder spectrum, E[z²] and firing frequency."""

    decoder_eigenvalues: StatisticPowerLaw
    """Eigenvalues of the covariance of the decoder rows (d values)."""
    mean_sq: StatisticPowerLaw
    """E[z_j²] over latents (N values, zeros dropped)."""
    frequency: StatisticPowerLaw
    """Firing frequency over latents (N values, dead latents dropped)."""
    central: tuple[float, float]
    """(lo, hi) fractions of the ranks kept by the central fits."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name).to_dict() for name in STATISTICS}
        out["central"] = list(self.central)
        return out


def _sorted_positive(values: ArrayLike, what: str) -> np.ndarray:
    array = np.asarray(
        values.detach().double().cpu() if isinstance(values, torch.Tensor) else values,
        dtype=np.float64,
    ).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise PSAEError(f"{what} contain NaN or infinite values: expected finite numbers")
    return -np.sort(-array[array > 0])


def _check_central(central: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(c) for c in central)
    if not 0.0 <= lo < hi <= 1.0:
        raise PSAEError(f"central range {central!r}: expected fractions 0 ≤ lo < hi ≤ 1")
    return lo, hi


def fit_power_law(
    values: ArrayLike, central: tuple[float, float] | None = None, what: str = "values"
) -> PowerLawFit:
    """Least-squares fit of log(value) on log(rank) over the positive values, sorted descending.

    With `central=(lo, hi)` only ranks r with lo·n < r ≤ hi·n are fitted (n = number of
    positive values). `what` names the values in error messages.
    """
    curve = _sorted_positive(values, what)
    n = curve.size
    first, last = 1, n
    if central is not None:
        lo, hi = _check_central(central)
        first, last = math.floor(lo * n) + 1, math.floor(hi * n)
    if last - first + 1 < 3:
        raise PSAEError(
            f"{what}: {max(last - first + 1, 0)} positive values in ranks {first}..{last} "
            f"(of {n} positive): expected at least 3 to fit a power law"
        )
    x = np.log(np.arange(first, last + 1, dtype=np.float64))
    y = np.log(curve[first - 1:last])
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    total = float(np.sum((y - y.mean()) ** 2))
    # A perfectly flat curve has nothing to explain: call the (exact) fit perfect.
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else 1.0
    return PowerLawFit(
        exponent=float(-slope), log_intercept=float(intercept), r2=r2,
        n_points=last - first + 1, rank_range=(first, last),
    )


def decoder_eigenvalues(sae: SparseAutoencoder) -> torch.Tensor:
    """Eigenvalues (descending, float64) of the covariance of the N decoder rows in R^d."""
    w = sae.W_dec.detach().double().cpu()
    if w.shape[0] < 2:
        raise PSAEError(f"num_latents={w.shape[0]}: expected at least 2 decoder rows")
    w = w - w.mean(0, keepdim=True)
    cov = w.t() @ w / (w.shape[0] - 1)
    return torch.linalg.eigvalsh(cov).flip(0)


def _statistic(values: ArrayLike, central: tuple[float, float], what: str) -> StatisticPowerLaw:
    curve = _sorted_positive(values, what)
    keep = log_uniform_indices(curve.size, MAX_CURVE_POINTS)
    return StatisticPowerLaw(
        full=fit_power_law(curve, None, what), central=fit_power_law(curve, central, what),
        n_values=int(curve.size), ranks=[int(i) + 1 for i in keep],
        values=[float(v) for v in curve[keep]],
    )


def dictionary_power_law(
    sae: SparseAutoencoder, stats: LatentStatistics,
    central: tuple[float, float] = DEFAULT_CENTRAL,
) -> DictionaryPowerLaw:
    """Fit the three SPEC §4.3 statistics of `sae`, with `stats` from `latent_statistics`."""
    central = _check_central(central)
    for name in ("mean_sq", "frequency"):
        size = getattr(stats, name).numel()
        if size != sae.num_latents:
            raise PSAEError(
                f"stats.{name} has {size} entries: expected num_latents={sae.num_latents}"
            )
    eig = decoder_eigenvalues(sae)
    eig = torch.where(eig > EIGENVALUE_RTOL * eig.max().clamp_min(0), eig, torch.zeros_like(eig))
    return DictionaryPowerLaw(
        decoder_eigenvalues=_statistic(eig, central, "decoder covariance eigenvalues"),
        mean_sq=_statistic(stats.mean_sq, central, "E[z²] of the latents"),
        frequency=_statistic(stats.frequency, central, "firing frequencies of the latents"),
        central=central,
    )


def plot_power_law(results: Mapping[str, DictionaryPowerLaw], path: str | Path) -> Path:
    """Three log-log panels (one per statistic): a curve per SAE, dashed central fits."""
    if not results:
        raise PSAEError("no SAE results to plot: expected at least one")
    fig, axes = new_figure(len(STATISTICS))
    colors = [f"C{i % 10}" for i in range(len(results))]
    for ax, stat in zip(axes, STATISTICS):
        for color, (name, result) in zip(colors, results.items()):
            s: StatisticPowerLaw = getattr(result, stat)
            ax.plot(s.ranks, s.values, color=color, lw=1.5,
                    label=f"{name}: full {s.full.exponent:.2f}, central {s.central.exponent:.2f}")
            lo, hi = s.central.rank_range
            ranks = np.geomspace(lo, hi, 64)
            ax.plot(ranks, s.central.predict(ranks), color=color, ls="--", lw=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rank")
        ax.set_ylabel(LABELS[stat])
        ax.set_title(f"{LABELS[stat]} (dashed: central fit)")
        ax.legend(fontsize="small", title="exponents")
    fig.suptitle("Dictionary power laws")
    return save_figure(fig, path)
