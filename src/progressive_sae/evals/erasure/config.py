"""Settings of targeted concept erasure (SCR and TPP)."""

from __future__ import annotations

from dataclasses import dataclass, field

from progressive_sae.errors import PSAEError
from progressive_sae.evals.datasets.offline import PACKAGES, TaskSizes
from progressive_sae.evals.probing.config import TextProbeSettings


@dataclass
class ErasureConfig(TextProbeSettings):
    """SCR and TPP as SAEBench defines them, on pooled text activations, per granularity."""

    n_values: list[int] = field(default_factory=lambda: [2, 5, 10, 20, 50])
    """Numbers of latents ablated."""
    scr: bool = True
    """Measure SCR (spurious correlation removal) on the offline spurious pair."""
    tpp: bool = True
    """Measure TPP (targeted probe perturbation) over the package classes."""
    packages: list[str] = field(default_factory=lambda: list(PACKAGES))
    """TPP classes: stdlib packages (one-vs-rest probes)."""
    scr_test_fraction: float = 0.5
    """Share of each SCR cell's source documents held out for testing (the text-processing
    cells have few documents)."""

    def __post_init__(self) -> None:
        if not self.n_values or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                                    for n in self.n_values):
            raise PSAEError(f"n_values={self.n_values!r}: expected positive integers such as "
                            "[2, 5, 10, 20, 50]")
        if not (self.scr or self.tpp):
            raise PSAEError("scr and tpp are both off: expected at least one of them")
        super().__post_init__()

    @property
    def scr_sizes(self) -> TaskSizes:
        return TaskSizes(self.train_per_class, self.test_per_class, self.scr_test_fraction,
                         self.seed)
