"""What every evaluation shares: granularity views of an SAE, bootstrap intervals, gating."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from progressive_sae.errors import PSAEError
from progressive_sae.sae.base import GRANULARITY_MODES, SparseAutoencoder

GATE_ACCURACY = 0.7
"""A task whose full-residual probe scores below this test accuracy is gated, not scored."""


@dataclass(frozen=True)
class GranularityView:
    """The first `granularity` latents of an SAE, encoded in `mode` (SPEC §2)."""

    granularity: int
    """G: latents < G are kept."""
    mode: str = "relative"
    """'relative' (k_G = round(k·G/N) over the first G pre-activations) or 'prefix'."""

    @property
    def label(self) -> str:
        return f"G={self.granularity} ({self.mode})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def granularity_views(
    sae: SparseAutoencoder, granularities: Iterable[int] | None = None,
    modes: Sequence[str] = GRANULARITY_MODES,
) -> list[GranularityView]:
    """The full dictionary, then each G < N in each mode (full size is the same in both)."""
    n = sae.num_latents
    views = [GranularityView(n, "relative")]
    for g in sorted(set(granularities or [])):
        if not 1 <= g <= n:
            raise PSAEError(f"granularity {g}: expected 1 ≤ G ≤ num_latents={n}")
        if g < n:
            views.extend(GranularityView(g, m) for m in modes)
    for m in modes:
        if m not in GRANULARITY_MODES:
            raise PSAEError(f"mode {m!r}: expected one of {GRANULARITY_MODES}")
    return views


@torch.no_grad()
def encode_dense(
    sae: SparseAutoencoder, x: torch.Tensor, view: GranularityView | None = None,
    batch_size: int = 4096,
) -> torch.Tensor:
    """Dense code [rows, G] of the view's latents, computed in batches of rows."""
    g = sae.num_latents if view is None else view.granularity
    mode = "relative" if view is None else view.mode
    out = torch.empty(x.shape[0], g, dtype=torch.float32)
    for start in range(0, x.shape[0], batch_size):
        rows = x[start:start + batch_size].to(sae.W_enc.device, sae.W_enc.dtype)
        code = sae.encode(rows, g, mode)
        keep = code.indices < g  # prefix mode keeps indices ≥ G with value 0
        values = code.values * keep
        dense = code.to_dense(sae.num_latents) if g == sae.num_latents else (
            values.new_zeros(rows.shape[0], g).scatter_add_(1, code.indices.clamp_max(g - 1),
                                                            values))
        out[start:start + batch_size] = dense.float().cpu()
    return out


@dataclass(frozen=True)
class Estimate:
    """A score with its bootstrap confidence interval."""

    value: float
    """The statistic on the full sample."""
    low: float
    """Lower end of the interval."""
    high: float
    """Upper end of the interval."""
    n: int
    """Sample size the statistic was computed on."""

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def bootstrap(
    statistic: Callable[[np.ndarray], float], n: int, resamples: int = 1000,
    level: float = 0.95, seed: int = 0,
) -> Estimate:
    """Percentile bootstrap of `statistic(indices)` over `n` units resampled with replacement.

    `statistic` receives an index array into the sample (so paired data stay paired) and
    returns a float; NaN resamples (e.g. one class missing) are dropped from the interval.
    Uses its own generator: the global RNG state is never touched.
    """
    if n < 1:
        raise PSAEError(f"bootstrap over {n} units: expected at least 1")
    value = float(statistic(np.arange(n)))
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(rng.integers(0, n, n)) for _ in range(resamples)], dtype=float)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return Estimate(value, float("nan"), float("nan"), n)
    alpha = (1 - level) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return Estimate(value, float(low), float(high), n)


def bootstrap_mean(values: Sequence[float] | np.ndarray, resamples: int = 1000,
                   level: float = 0.95, seed: int = 0) -> Estimate:
    """Mean of `values` with its percentile-bootstrap interval."""
    array = np.asarray(values, dtype=float)
    return bootstrap(lambda idx: float(array[idx].mean()), array.size, resamples, level, seed)


def fieller_interval(u: np.ndarray, v: np.ndarray, level: float = 0.95
                     ) -> tuple[float, float] | None:
    """Fieller's interval for mean(u) / mean(v) from paired per-unit values u, v [n].

    The set of θ with (Ū − θV̄)² ≤ z²·Var(Ū − θV̄), variances of the means estimated from
    the units. Bounded only when V̄ is itself clearly non-zero (V̄² > z²·Var(V̄)); otherwise
    the honest interval is unbounded, returned as None — never a percentile of ratios whose
    denominators cross zero."""
    from scipy.stats import norm

    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    n = u.size
    if n < 2:
        return None
    z2 = float(norm.ppf(0.5 + level / 2)) ** 2
    cov = np.cov(np.stack([u, v]), ddof=1) / n
    su, sv, suv = cov[0, 0], cov[1, 1], cov[0, 1]
    um, vm = u.mean(), v.mean()
    a = vm * vm - z2 * sv
    if a <= 0:
        return None
    b = -2 * (um * vm - z2 * suv)
    c = um * um - z2 * su
    disc = max(b * b - 4 * a * c, 0.0)  # ≥ 0 up to rounding: θ̂ = Ū/V̄ is in the set
    root = np.sqrt(disc)
    return float((-b - root) / (2 * a)), float((-b + root) / (2 * a))
