"""Settings of the absorption evaluation (SAEBench's first-letter absorption, Chanin et al.)."""

from __future__ import annotations

import dataclasses
import math
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
    absorber_cos: float | None = None
    """Absorption fraction: an absorbing latent's decoder cosine with the probe is at least
    this; None = max(SAEBench's 0.1, absorber_sigmas/√d) (see `cosine_thresholds`)."""
    projection_share: float = 0.4
    """Absorbers must carry at least this share of the row's probe projection."""
    max_absorbers: int = 3
    """At most this many absorbing latents are summed (absorption fraction)."""
    full_absorption_cos: float | None = None
    """Full absorption: the top projecting latent's decoder cosine with the probe is at least
    this; None = max(SAEBench's 0.025, full_absorption_sigmas/√d)."""
    absorber_sigmas: float = 3.0
    """Default absorber threshold in standard deviations of a random direction's cosine."""
    full_absorption_sigmas: float = 1.2
    """Default full-absorption threshold likewise (SAEBench's 0.025 is 1.2σ at d = 2304)."""
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

    def cosine_thresholds(self, d_in: int | None = None) -> tuple[float, float]:
        """(absorber, full-absorption) cosine thresholds for activations of width `d_in`.

        A random direction's cosine with the probe has std ≈ 1/√d: SAEBench's 0.1 is 4.8σ at
        Gemma-2-2b's d = 2304 but 1.6σ at d = 256, where ~5% of all latents pass by chance
        and an untrained SAE scores as much absorption as a trained one (measured on the
        offline LM). Unless set, each threshold is SAEBench's value or `sigmas`/√d, whichever
        is larger: SAEBench's exact values for d ≥ 900 (absorbers) and d ≥ 2304 (full).
        """
        absorber, full = 0.1, 0.025
        if d_in is not None:
            absorber = max(absorber, self.absorber_sigmas / math.sqrt(d_in))
            full = max(full, self.full_absorption_sigmas / math.sqrt(d_in))
        return (self.absorber_cos if self.absorber_cos is not None else absorber,
                self.full_absorption_cos if self.full_absorption_cos is not None else full)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
