"""Scaling law of FVU in dictionary size, sparsity and granularity (SPEC §4.4, paper eq. 9).

    FVU(N, k, G) = exp(α + β_N·ln N + β_k·ln k + β_G·ln G + γ·ln k·ln G) + exp(ζ + η·ln k)

The first term extends Gao et al.'s law with the granularity G at which a progressive SAE
is read; the second is an irreducible floor that falls with k only. The fit minimises the
squared error of ln FVU, so every run counts equally whatever its FVU scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from matplotlib.colors import LogNorm

from progressive_sae.analysis.plotting import new_figure, save_figure
from progressive_sae.errors import PSAEError

PARAMS = ("alpha", "beta_N", "beta_k", "beta_G", "gamma", "zeta", "eta")
MIN_POINTS = 8
"""Seven parameters: at least one more point than parameters."""
ZETA_OFFSETS = (0.0, -1.0, -2.0, -4.0)
"""Starting floors ζ relative to the smallest observed ln FVU (the floor lies below it)."""
ETA_STARTS = (0.0, -0.5)


class ScalingPoint(NamedTuple):
    """One run read at one granularity: dictionary size N, sparsity k, granularity G, FVU."""

    N: float
    k: float
    G: float
    fvu: float


@dataclass
class ScalingLawFit:
    """The fitted eq. 9 parameters and the quality of the fit in log space."""

    params: dict[str, float]
    """alpha, beta_N, beta_k, beta_G, gamma (first term), zeta, eta (floor term)."""
    r2_log: float
    """R² of ln FVU."""
    rmse_log: float
    """Root-mean-square residual of ln FVU (≈ relative error of FVU)."""
    n_points: int
    """Number of (N, k, G, FVU) points fitted."""

    def predict(self, N: Any, k: Any, G: Any) -> Any:
        """Predicted FVU; scalars give a float, arrays an array."""
        p = self.params
        ln_n, ln_k, ln_g = (np.log(np.asarray(v, dtype=np.float64)) for v in (N, k, G))
        first = (p["alpha"] + p["beta_N"] * ln_n + p["beta_k"] * ln_k + p["beta_G"] * ln_g
                 + p["gamma"] * ln_k * ln_g)
        fvu = np.exp(first) + np.exp(p["zeta"] + p["eta"] * ln_k)
        return float(fvu) if np.ndim(fvu) == 0 else fvu

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": {name: float(self.params[name]) for name in PARAMS},
            "r2_log": self.r2_log, "rmse_log": self.rmse_log, "n_points": self.n_points,
        }


def _check_points(points: Sequence[ScalingPoint | Sequence[float]]) -> torch.Tensor:
    if len(points) < MIN_POINTS:
        raise PSAEError(
            f"{len(points)} scaling-law points: expected at least {MIN_POINTS} "
            f"to fit {len(PARAMS)} parameters"
        )
    rows = []
    for i, point in enumerate(points):
        if len(point) != 4:
            raise PSAEError(f"scaling-law point {i} = {tuple(point)!r}: expected (N, k, G, fvu)")
        row = [float(v) for v in point]
        if not all(math.isfinite(v) and v > 0 for v in row):
            raise PSAEError(
                f"scaling-law point {i} = {tuple(point)!r}: expected finite positive N, k, G, fvu"
            )
        rows.append(row)
    data = torch.tensor(rows, dtype=torch.float64)
    for col, name in enumerate(("N", "k", "G")):
        if data[:, col].unique().numel() < 2:
            raise PSAEError(
                f"every point has {name}={data[0, col].item():g}: expected at least 2 distinct "
                f"values of {name} (its coefficient is otherwise undetermined)"
            )
    return data


def _design(data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """First-term design matrix [1, ln N, ln k, ln G, ln k·ln G], ln k, and target ln FVU."""
    ln = data.log()
    ln_n, ln_k, ln_g, y = ln.unbind(1)
    x1 = torch.stack([torch.ones_like(ln_n), ln_n, ln_k, ln_g, ln_k * ln_g], 1)
    return x1, ln_k, y


def _residual_and_jacobian(
    theta: torch.Tensor, x1: torch.Tensor, ln_k: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    a1 = x1 @ theta[:5]
    a2 = theta[5] + theta[6] * ln_k
    residual = torch.logaddexp(a1, a2) - y
    w1 = torch.sigmoid(a1 - a2)  # share of the predicted FVU carried by the first term
    w2 = 1.0 - w1
    jac = torch.cat([w1[:, None] * x1, w2[:, None], (w2 * ln_k)[:, None]], 1)
    return residual, jac


def _levenberg_marquardt(
    theta: torch.Tensor, x1: torch.Tensor, ln_k: torch.Tensor, y: torch.Tensor,
    max_iter: int = 500,
) -> tuple[torch.Tensor, float]:
    """Minimise ½Σ residual² from `theta`; Marquardt's diagonal scaling copes with the
    very different magnitudes of the columns (1 vs ln k·ln G ≈ 50)."""
    residual, jac = _residual_and_jacobian(theta, x1, ln_k, y)
    cost = float(residual @ residual)
    damping = 1e-3
    for _ in range(max_iter):
        jtj, grad = jac.t() @ jac, jac.t() @ residual
        diag = torch.diag(jtj).clamp_min(1e-12)
        while True:
            try:
                step = torch.linalg.solve(jtj + damping * torch.diag(diag), -grad)
            except RuntimeError:  # singular system: damp harder
                step = None
            if step is not None:
                candidate = theta + step
                new_residual, new_jac = _residual_and_jacobian(candidate, x1, ln_k, y)
                new_cost = float(new_residual @ new_residual)
                if math.isfinite(new_cost) and new_cost <= cost:
                    break
            damping *= 4.0
            if damping > 1e12:
                return theta, cost
        converged = cost - new_cost <= 1e-14 * max(cost, 1e-300) + 1e-30
        theta, residual, jac, cost = candidate, new_residual, new_jac, new_cost
        damping = max(damping / 3.0, 1e-12)
        if converged or float(step.abs().max()) < 1e-12:
            break
    return theta, cost


def fit_scaling_law(points: Sequence[ScalingPoint | Sequence[float]]) -> ScalingLawFit:
    """Fit eq. 9 to (N, k, G, fvu) points by least squares in ln FVU (float64, deterministic).

    Starts: the first term alone fitted by linear least squares, combined with a grid of
    floors (ζ, η); each start is refined by Levenberg–Marquardt and the best one is kept.
    """
    data = _check_points(points)
    x1, ln_k, y = _design(data)
    first = torch.linalg.lstsq(x1, y[:, None]).solution[:, 0]
    best: tuple[torch.Tensor, float] | None = None
    for zeta_offset in ZETA_OFFSETS:
        for eta in ETA_STARTS:
            zeta = float(y.min()) + zeta_offset - eta * float(ln_k.mean())
            start = torch.cat([first, torch.tensor([zeta, eta], dtype=torch.float64)])
            theta, cost = _levenberg_marquardt(start, x1, ln_k, y)
            if best is None or cost < best[1] - 1e-15 * max(best[1], 1e-300):
                best = (theta, cost)
    assert best is not None
    theta, cost = best
    total = float(((y - y.mean()) ** 2).sum())
    n = y.numel()
    return ScalingLawFit(
        params={name: float(v) for name, v in zip(PARAMS, theta)},
        r2_log=1.0 - cost / total if total > 0 else 1.0,
        rmse_log=math.sqrt(cost / n), n_points=n,
    )


def plot_scaling_law(
    fit: ScalingLawFit, points: Sequence[ScalingPoint | Sequence[float]], path: str | Path
) -> Path:
    """Predicted vs observed FVU (log-log) with the y = x line, coloured by G/N."""
    data = _check_points(points).numpy()
    n, k, g, fvu = data.T
    predicted = np.asarray(fit.predict(n, k, g))
    fig, (ax,) = new_figure(1)
    share = g / n
    norm = LogNorm(vmin=share.min(), vmax=max(share.max(), share.min() * 1.0001))
    scatter = ax.scatter(fvu, predicted, c=share, cmap="viridis", norm=norm, s=18,
                         label=f"runs (R² log = {fit.r2_log:.4f})")
    lo = min(fvu.min(), predicted.min()) / 1.2
    hi = max(fvu.max(), predicted.max()) * 1.2
    ax.plot([lo, hi], [lo, hi], color="black", ls="--", lw=1, label="y = x")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.tick_params(axis="x", which="both", labelrotation=30)  # minor log labels collide
    ax.set_xlabel("observed FVU")
    ax.set_ylabel("predicted FVU")
    ax.set_title(f"Scaling law fit ({fit.n_points} points, RMSE log = {fit.rmse_log:.3f})")
    ax.legend(loc="upper left")
    fig.colorbar(scatter, ax=ax, label="granularity G / N")
    return save_figure(fig, path)
