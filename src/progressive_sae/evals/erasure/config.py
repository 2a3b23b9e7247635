"""Settings of targeted concept erasure (SCR and TPP)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from progressive_sae.errors import PSAEError
from progressive_sae.evals.datasets.offline import PACKAGES, TaskSizes
from progressive_sae.sae.base import GRANULARITY_MODES


@dataclass
class ErasureConfig:
    """SCR and TPP as SAEBench defines them, on pooled text activations, per granularity."""

    n_values: list[int] = field(default_factory=lambda: [2, 5, 10, 20, 50])
    """Numbers of latents ablated."""
    scr: bool = True
    """Measure SCR (spurious correlation removal) on the offline spurious pair."""
    tpp: bool = True
    """Measure TPP (targeted probe perturbation) over the package classes."""
    packages: list[str] = field(default_factory=lambda: list(PACKAGES))
    """TPP classes: stdlib packages (one-vs-rest probes)."""
    c: float = 1.0
    """Inverse L2 strength of every logistic regression (fixed: never tuned on test)."""
    max_iter: int = 1000
    """Iterations of the logistic-regression solver."""
    train_per_class: int = 80
    """Training texts per class (TPP) or per attribute cell (SCR)."""
    test_per_class: int = 40
    """Test texts per class or cell."""
    test_fraction: float = 0.3
    """Share of each class's source documents held out for testing (TPP)."""
    scr_test_fraction: float = 0.5
    """The same for SCR, whose smallest cell (text-processing classes) has few documents."""
    ctx: int = 64
    """Tokens per text, BOS included (SAEBench: 128; docstrings rarely need more than 64)."""
    lm_batch_size: int = 32
    """Texts per LM forward pass."""
    sae_batch_tokens: int = 8192
    """Tokens per SAE encode when pooling latents."""
    modes: list[str] = field(default_factory=lambda: list(GRANULARITY_MODES))
    """Granularity modes of the views below the full dictionary."""
    resamples: int = 1000
    """Bootstrap resamples over test texts."""
    level: float = 0.95
    """Confidence level of the intervals."""
    seed: int = 0
    """Seed of splits, subsampling and bootstrap."""

    def __post_init__(self) -> None:
        if not self.n_values or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                                    for n in self.n_values):
            raise PSAEError(f"n_values={self.n_values!r}: expected positive integers such as "
                            "[2, 5, 10, 20, 50]")
        if not (self.scr or self.tpp):
            raise PSAEError("scr and tpp are both off: expected at least one of them")
        for m in self.modes:
            if m not in GRANULARITY_MODES:
                raise PSAEError(f"mode {m!r}: expected one of {GRANULARITY_MODES}")
        if not self.c > 0:
            raise PSAEError(f"c={self.c!r}: expected a positive number")
        if self.resamples < 1:
            raise PSAEError(f"resamples={self.resamples!r}: expected at least 1")

    @property
    def sizes(self) -> TaskSizes:
        return TaskSizes(self.train_per_class, self.test_per_class, self.test_fraction, self.seed)

    @property
    def scr_sizes(self) -> TaskSizes:
        return TaskSizes(self.train_per_class, self.test_per_class, self.scr_test_fraction,
                         self.seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
