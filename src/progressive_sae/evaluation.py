"""Scoring one SAE at one granularity on every metric of SPEC §3, against one held-out set.

An `EvalSet` bundles what all SAEs of an experiment are scored on — held-out activation
rows, a fixed sample of them for RSA, and optionally LM windows for the recaptured loss —
so that the per-set work (the RSA sample, the clean and zero-ablated cross-entropies) is
done once however many SAEs and granularities are scored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from progressive_sae.data.source import ActivationSource
from progressive_sae.errors import PSAEError
from progressive_sae.metrics import (
    SpliceBaseline,
    evaluate_reconstruction,
    recaptured_loss,
    representational_similarity,
    splice_baseline,
)
from progressive_sae.sae.base import SparseAutoencoder


@dataclass
class EvalSet:
    """Held-out data shared by every evaluation of an experiment."""

    activations: ActivationSource
    """Held-out activation rows (FVU, MSE, L0, dead fraction)."""
    rsa_rows: int = 1000
    """Rows (the first ones of `activations`) whose distance matrices RSA compares."""
    lm: Any = None
    """The language model for the recaptured loss; None skips it."""
    input_ids: torch.Tensor | None = None
    """Held-out token windows [W, T] spliced through the LM."""
    hook: str | None = None
    """Hook point the SAE reads and is spliced into."""
    exclude_bos: bool = True
    """Neither splice nor score the BOS position."""
    batch_size: int = 4096
    """Activation rows per encode."""
    windows_per_pass: int = 8
    """LM windows per forward pass (bounds the logits' memory)."""
    _rsa_sample: torch.Tensor | None = field(default=None, repr=False)
    _baseline: SpliceBaseline | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.activations) == 0:
            raise PSAEError("the evaluation set holds no activation rows: expected at least one")
        if self.lm is not None and (self.input_ids is None or self.hook is None):
            raise PSAEError("an LM evaluation needs input_ids and a hook point")

    @property
    def has_lm(self) -> bool:
        return self.lm is not None

    def rsa_sample(self) -> torch.Tensor:
        if self._rsa_sample is None:
            n = min(self.rsa_rows, len(self.activations))
            self._rsa_sample = self.activations.rows(0, n)
        return self._rsa_sample

    def baseline(self) -> SpliceBaseline:
        if self._baseline is None:
            self._baseline = splice_baseline(
                self.lm, self.input_ids, self.hook, self.exclude_bos, self.windows_per_pass
            )
        return self._baseline


@dataclass
class Fidelity:
    """Every metric of one SAE at one granularity."""

    granularity: int
    """G: the latents the code may use."""
    mode: str
    """'relative' (k_G = round(k·G/N) on the first G latents) or 'prefix'."""
    k: int
    """Active latents allowed at G (k_G in relative mode, k in prefix mode)."""
    fvu: float
    """Fraction of variance unexplained on the held-out rows."""
    mse: float
    """Mean squared reconstruction error per row."""
    l0: float
    """Mean active latents per row."""
    dead_fraction: float
    """Share of the first G latents that never fired on the held-out rows."""
    rsa: float
    """Representational similarity of the reconstructions to the originals."""
    ce_clean: float | None = None
    """LM cross-entropy without splicing (None without an LM)."""
    ce_spliced: float | None = None
    """LM cross-entropy with the reconstruction spliced in."""
    ce_ratio: float | None = None
    """CE_clean / CE_spliced (the paper's recaptured loss)."""
    ce_difference: float | None = None
    """CE_spliced - CE_clean."""
    fraction_recovered: float | None = None
    """(CE_zero - CE_spliced) / (CE_zero - CE_clean)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def evaluate_fidelity(
    sae: SparseAutoencoder, evalset: EvalSet, granularity: int | None = None,
    mode: str = "relative",
) -> Fidelity:
    """Score `sae` at granularity G (default its size) on every metric `evalset` allows."""
    g = granularity or sae.num_latents
    recon = evaluate_reconstruction(
        sae, evalset.activations, g, mode, batch_size=evalset.batch_size
    )
    was_training = sae.training
    sae.eval()
    x = evalset.rsa_sample().to(sae.W_dec.device)
    rsa = representational_similarity(x, sae(x, g, mode), samples=x.shape[0])
    sae.train(was_training)
    k = sae.cfg.k if mode == "prefix" or g == sae.num_latents else sae.relative_k(g)
    point = Fidelity(
        granularity=g, mode=mode, k=k, fvu=recon.fvu, mse=recon.mse, l0=recon.l0,
        dead_fraction=recon.dead_fraction, rsa=rsa,
    )
    if evalset.has_lm:
        ce = recaptured_loss(
            evalset.lm, sae, evalset.input_ids, evalset.hook, g, mode, evalset.exclude_bos,
            baseline=evalset.baseline(), windows_per_pass=evalset.windows_per_pass,
        )
        point.ce_clean, point.ce_spliced = ce.ce_clean, ce.ce_spliced
        point.ce_ratio, point.ce_difference = ce.ratio, ce.difference
        point.fraction_recovered = ce.fraction_recovered
    return point
