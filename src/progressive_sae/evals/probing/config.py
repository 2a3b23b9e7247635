"""Settings of sparse probing (and of the text activations erasure shares with it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from progressive_sae.errors import PSAEError
from progressive_sae.evals.datasets.offline import PACKAGES, TaskSizes
from progressive_sae.sae.base import GRANULARITY_MODES

PROBES = ("saebench", "logistic")
"""Probe recipes: SAEBench's, or our standardised logistic regression."""


@dataclass
class TextProbeSettings:
    """What sparse probing and concept erasure share: texts, probes, views and statistics."""

    probe: str = "saebench"
    """Probe recipe: 'saebench' (SAEBench's: AdamW torch probes for SCR/TPP and full-width
    probes, sklearn lbfgs on raw features for k-sparse probes) or 'logistic' (ours: sklearn
    liblinear L2 on standardised features everywhere)."""
    c: float = 1.0
    """Inverse L2 strength of every logistic regression (fixed: never tuned on test)."""
    max_iter: int = 1000
    """Iterations of the logistic-regression solver."""
    train_per_class: int = 80
    """Training texts per class and task (per attribute cell for SCR)."""
    test_per_class: int = 40
    """Test texts per class and task (per cell for SCR)."""
    test_fraction: float = 0.3
    """Share of each class's source documents held out for testing."""
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
        for m in self.modes:
            if m not in GRANULARITY_MODES:
                raise PSAEError(f"mode {m!r}: expected one of {GRANULARITY_MODES}")
        if self.probe not in PROBES:
            raise PSAEError(f"probe {self.probe!r}: expected one of {list(PROBES)}")
        if not self.c > 0:
            raise PSAEError(f"c={self.c!r}: expected a positive number")
        if self.resamples < 1:
            raise PSAEError(f"resamples={self.resamples!r}: expected at least 1")

    @property
    def sizes(self) -> TaskSizes:
        return TaskSizes(self.train_per_class, self.test_per_class, self.test_fraction, self.seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ProbingConfig(TextProbeSettings):
    """Sparse probing on labelled texts (SAEBench's definition), per granularity view."""

    tasks: list[str] | None = None
    """Offline task names ('package:<name>', 'kind', 'source'); None = every package, kind and
    source."""
    packages: list[str] = field(default_factory=lambda: list(PACKAGES))
    """Package classes of the one-vs-rest package tasks."""
    ks: list[int] = field(default_factory=lambda: [1, 2, 5])
    """Numbers of latents the sparse probes use (also the residual dimensions of llm_top_k)."""
    all_latents: bool = True
    """Also probe every latent of each view (SAEBench's sae_test_accuracy)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1
                              for k in self.ks):
            raise PSAEError(f"ks={self.ks!r}: expected positive integers such as [1, 2, 5]")
