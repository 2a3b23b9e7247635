"""Settings of the absorption evaluation (SAEBench's first-letter absorption, Chanin et al.)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from progressive_sae.errors import PSAEError
from progressive_sae.evals.common import GATE_ACCURACY

TASKS = ("first-letter", "word-start", "capitalised", "doctest")
"""LM label sets: the first-letter prompts, or token classes the small offline LM encodes."""


@dataclass
class AbsorptionConfig:
    """Splits, probe gating, the k-sparse main-latent search and SAEBench's thresholds."""

    test_fraction: float = 0.3
    """Rows held out to score the probes and measure absorption (probes never fit on them)."""
    val_fraction: float = 0.2
    """Rows (of the rest) on which each k of the k-sparse search is scored."""
    gate_f1: float = GATE_ACCURACY
    """A class whose residual probe reaches a lower test F1 is reported as gated."""
    min_class_rows: int = 8
    """A class needs this many rows in each split (else it is reported as too few)."""
    max_k: int = 10
    """Largest k tried by the k-sparse probe over SAE latents."""
    f1_jump: float = 0.03
    """k grows while the k-sparse probe's validation F1 rises by more than this."""
    absorber_cos: float = 0.1
    """Absorption fraction: an absorbing latent's decoder cosine with the probe is at least this."""
    projection_share: float = 0.4
    """Absorbers must carry at least this share of the row's probe projection."""
    max_absorbers: int = 3
    """At most this many absorbing latents are summed (absorption fraction)."""
    full_absorption_cos: float = 0.025
    """Full absorption: the top projecting latent's decoder cosine with the probe is at least
    this (SAEBench's threshold)."""
    probe_c: float = 1.0
    """Inverse L2 strength of the residual logistic-regression probes (on standardised
    activations)."""
    resamples: int = 1000
    """Bootstrap resamples (unit: probe true-positive rows, class membership kept)."""
    seed: int = 0
    """Seed of the splits, in-context examples and bootstrap."""

    def __post_init__(self) -> None:
        for name in ("test_fraction", "val_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < 1:
                raise PSAEError(f"absorption {name}={value!r}: expected a fraction in (0, 1)")
        for name in ("min_class_rows", "max_k", "max_absorbers", "resamples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PSAEError(f"absorption {name}={value!r}: expected a positive integer")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
