"""Scores of an explanation: simulation (correlation), fuzzing and detection (balanced
accuracy). Scorers take predictions and verdicts from any interpreter; they know nothing of
HTTP or models."""

from progressive_sae.interp.scorers.common import Failure, MethodScore
from progressive_sae.interp.scorers.fuzzing import (
    Shown,
    balanced_accuracy,
    detection_windows,
    fuzzing_windows,
    score_verdicts,
)
from progressive_sae.interp.scorers.simulation import correlation, score_simulation

__all__ = [
    "Failure",
    "MethodScore",
    "Shown",
    "balanced_accuracy",
    "correlation",
    "detection_windows",
    "fuzzing_windows",
    "score_simulation",
    "score_verdicts",
]
