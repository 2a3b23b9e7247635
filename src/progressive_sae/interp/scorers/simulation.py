"""Simulation scoring: Pearson correlation between predicted (0–10) and true activations
over the test and non-activating windows' tokens concatenated (SPEC §4.6)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from progressive_sae.interp.scorers.common import Failure, MethodScore


def correlation(true: np.ndarray, predicted: np.ndarray) -> tuple[float | None, str | None]:
    """Pearson's r, or (None, reason) when either side is constant (r is undefined)."""
    true, predicted = np.asarray(true, float), np.asarray(predicted, float)
    if true.size < 2:
        return None, f"{true.size} token(s) scored: need at least 2"
    if np.ptp(predicted) == 0:
        return None, f"constant prediction ({predicted[0]:g} on every token)"
    if np.ptp(true) == 0:
        return None, "constant true activations"
    r = float(np.corrcoef(true, predicted)[0, 1])
    return (r, None) if np.isfinite(r) else (None, "correlation is not finite")


def score_simulation(true: Sequence[np.ndarray],
                     predicted: Sequence[list[float] | Failure]) -> MethodScore:
    """Per-window true activations and predictions (or failures) → the latent's score.

    Failed windows are left out of the correlation and listed; with none answered, or a
    constant prediction, the score is undefined (None with the reason), never a number.
    """
    failures = tuple(p for p in predicted if isinstance(p, Failure))
    pairs = [(t, np.asarray(p, float)) for t, p in zip(true, predicted)
             if not isinstance(p, Failure)]
    for t, p in pairs:
        if len(t) != len(p):
            raise ValueError(f"{len(p)} predictions for a window of {len(t)} tokens")
    if not pairs:
        return MethodScore.undefined(f"all {len(failures)} simulations failed",
                                     failures=failures)
    value, reason = correlation(np.concatenate([t for t, _ in pairs]),
                                np.concatenate([p for _, p in pairs]))
    return MethodScore(value, reason, len(pairs), failures)
