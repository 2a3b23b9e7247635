"""Fuzzing and detection: which windows does the explanation pick out? (SPEC §4.6)

Fuzzing shows each test window with its activating tokens highlighted (correct) and each
non-activating window with as many random tokens highlighted (incorrect); detection shows
the same windows without highlights and asks whether the latent fires. The score is the
per-latent balanced accuracy (TPR + TNR) / 2 over the answered windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from progressive_sae.interp.sampling import LatentExamples
from progressive_sae.interp.scorers.common import Failure, MethodScore


@dataclass(frozen=True)
class Shown:
    """A window as shown to the judge."""

    tokens: np.ndarray
    """Its token ids."""
    marks: np.ndarray | None
    """Highlighted tokens (fuzzing); None for detection."""
    label: bool
    """The right answer: correctly highlighted (fuzzing) / the latent fires (detection)."""


def fuzzing_windows(item: LatentExamples, seed: int = 0) -> list[Shown]:
    """Test windows marked where the latent fires; non-activating windows with the same
    number of random tokens marked (paired in order)."""
    rng = np.random.default_rng([seed, item.latent, 7])
    shown = [Shown(w.tokens, w.acts > 0, True) for w in item.test]
    for right, wrong in zip(item.test, item.nonactivating):
        count = max(1, min(int((right.acts > 0).sum()), len(wrong.tokens)))
        marks = np.zeros(len(wrong.tokens), bool)
        marks[rng.choice(len(wrong.tokens), size=count, replace=False)] = True
        shown.append(Shown(wrong.tokens, marks, False))
    return shown


def detection_windows(item: LatentExamples) -> list[Shown]:
    return ([Shown(w.tokens, None, True) for w in item.test]
            + [Shown(w.tokens, None, False) for w in item.nonactivating])


def balanced_accuracy(labels: Sequence[bool], verdicts: Sequence[bool]
                      ) -> tuple[float | None, str | None]:
    """(TPR + TNR) / 2, or (None, reason) when one class is absent."""
    labels, verdicts = np.asarray(labels, bool), np.asarray(verdicts, bool)
    if not labels.any() or labels.all():
        return None, "answers for only one class of windows"
    tpr = float(verdicts[labels].mean())
    tnr = float((~verdicts[~labels]).mean())
    return (tpr + tnr) / 2, None


def score_verdicts(shown: Sequence[Shown], verdicts: Sequence[bool | Failure]) -> MethodScore:
    """Balanced accuracy over the answered windows; failures listed, never counted as
    wrong or right."""
    failures = tuple(v for v in verdicts if isinstance(v, Failure))
    answered = [(s.label, v) for s, v in zip(shown, verdicts) if not isinstance(v, Failure)]
    if not answered:
        return MethodScore.undefined(f"all {len(failures)} answers failed", failures=failures)
    value, reason = balanced_accuracy([a for a, _ in answered], [v for _, v in answered])
    return MethodScore(value, reason, len(answered), failures)
