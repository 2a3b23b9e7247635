"""Settings of targeted concept erasure (SCR and TPP)."""

from __future__ import annotations

from dataclasses import dataclass, field

from progressive_sae.errors import PSAEError
from progressive_sae.evals.datasets.offline import PACKAGES, TaskSizes
from progressive_sae.evals.datasets.spurious import SCR_PAIRS
from progressive_sae.evals.probing.adamw import AdamWProbeSettings
from progressive_sae.evals.probing.config import TextProbeSettings


@dataclass
class ErasureConfig(TextProbeSettings):
    """SCR and TPP as SAEBench defines them, on pooled text activations, per granularity."""

    n_values: list[int] = field(default_factory=lambda: [2, 5, 10, 20, 50, 100, 500])
    """Numbers of latents ablated (SAEBench's); a view with G < n skips that n."""
    scr: bool = True
    """Measure SCR (spurious correlation removal) on the offline spurious pairs."""
    scr_pairs: list[str] = field(default_factory=lambda: list(SCR_PAIRS))
    """SCR pairs by name (offline.SCR_PAIRS); SCR is their mean, as SAEBench's."""
    scr_train_per_cell: int = 150
    """Training texts per (A, B) cell of the oracle probes; the biased probe gets up to twice
    as many per agreeing cell, so that all three see the same number (as in SAEBench)."""
    scr_test_per_cell: int = 50
    """Test texts per cell."""
    probe_epochs: int = 20
    """SAEBench recipe: epochs of the SCR/TPP probes."""
    probe_batch_size: int = 16
    """SAEBench recipe: texts per step (it sets how much of the spurious signal is learnt)."""
    probe_lr: float = 1e-3
    """SAEBench recipe: AdamW learning rate."""
    probe_l1_penalty: float = 1e-3
    """SAEBench recipe: L1 penalty on the probe weight."""
    tpp: bool = True
    """Measure TPP (targeted probe perturbation) over the package classes."""
    packages: list[str] = field(default_factory=lambda: list(PACKAGES))
    """TPP classes: stdlib packages (one-vs-rest probes)."""
    scr_test_fraction: float = 0.3
    """Share of each SCR cell's source documents held out for testing."""

    def __post_init__(self) -> None:
        if not self.n_values or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                                    for n in self.n_values):
            raise PSAEError(f"n_values={self.n_values!r}: expected positive integers such as "
                            "[2, 5, 10, 20, 50]")
        if self.scr:
            unknown = sorted(set(self.scr_pairs) - set(SCR_PAIRS))
            if unknown or not self.scr_pairs:
                raise PSAEError(f"scr_pairs={self.scr_pairs!r}: expected names among "
                                f"{list(SCR_PAIRS)}")
        if not (self.scr or self.tpp):
            raise PSAEError("scr and tpp are both off: expected at least one of them")
        super().__post_init__()

    @property
    def scr_sizes(self) -> TaskSizes:
        return TaskSizes(self.scr_train_per_cell, self.scr_test_per_cell,
                         self.scr_test_fraction, self.seed)

    @property
    def adamw(self) -> AdamWProbeSettings:
        """The SCR/TPP probes' training recipe ('saebench')."""
        return AdamWProbeSettings(self.probe_epochs, self.probe_batch_size, self.probe_lr,
                                  self.probe_l1_penalty, patience=self.probe_epochs)
