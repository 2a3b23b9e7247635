"""Bootstrap over test texts, vectorised: one matrix of resample counts serves every score.

`common.bootstrap` calls a statistic once per resample in Python; probing and erasure score
thousands of (SAE, view, task, k) cells on the same test texts, so here each resample is a
row of counts (how often each text was drawn, the same draws as `rng.integers(0, n, n)`)
and a mean over texts is one matrix product. Percentile intervals as in `common.bootstrap`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from progressive_sae.evals.common import Estimate
from progressive_sae.json_files import finite_or_none


@dataclass(frozen=True)
class Resamples:
    """Resample counts [R, n] over n test texts."""

    counts: np.ndarray
    """counts[r, i]: how many times text i is in resample r."""
    level: float
    """Confidence level of the intervals."""

    @classmethod
    def draw(cls, n: int, resamples: int = 1000, level: float = 0.95, seed: int = 0) -> Resamples:
        rng = np.random.default_rng(seed)
        counts = np.zeros((resamples, n), dtype=np.float64)
        for r in range(resamples):
            counts[r] = np.bincount(rng.integers(0, n, n), minlength=n)
        return cls(counts, level)

    @property
    def n(self) -> int:
        return int(self.counts.shape[1])

    def means(self, values: np.ndarray) -> np.ndarray:
        """Resampled means of per-text values [n] (or [n, m] → [R, m])."""
        return self.counts @ np.asarray(values, dtype=np.float64) / self.n

    def balanced_accuracy(self, correct: np.ndarray, positive: np.ndarray) -> np.ndarray:
        """Resampled (TPR + TNR)/2; NaN where a resample lacks a class. `correct` may be
        [n] or [n, m] (then `positive` [n] or [n, m]) → [R] or [R, m]."""
        correct = np.asarray(correct, dtype=np.float64)
        pos = np.asarray(positive, dtype=np.float64)
        if correct.ndim == 2 and pos.ndim == 1:
            pos = pos[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            tpr = (self.counts @ (correct * pos)) / (self.counts @ pos)
            tnr = (self.counts @ (correct * (1 - pos))) / (self.counts @ (1 - pos))
        return (tpr + tnr) / 2

    def estimate(self, value: float, draws: np.ndarray) -> Estimate:
        """Percentile interval of the finite draws around the full-sample `value`."""
        draws = np.asarray(draws, dtype=np.float64)
        draws = draws[np.isfinite(draws)]
        if draws.size == 0 or not np.isfinite(value):
            return Estimate(float(value), float("nan"), float("nan"), self.n)
        alpha = (1 - self.level) / 2
        low, high = np.quantile(draws, [alpha, 1 - alpha])
        return Estimate(float(value), float(low), float(high), self.n)


def balanced_accuracy(correct: np.ndarray, positive: np.ndarray) -> float:
    """(TPR + TNR)/2 of one prediction vector."""
    correct = np.asarray(correct, dtype=bool)
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return float(correct.mean())
    return float((correct[positive].mean() + correct[~positive].mean()) / 2)


json_safe = finite_or_none
"""`obj` with NaN/inf floats replaced by None (valid JSON), recursively."""
