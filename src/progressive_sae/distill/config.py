"""Settings of distillation: how families are found, merged and (optionally) fine-tuned."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from progressive_sae.errors import PSAEError

FAMILY_METHODS = ("kmeans", "agglomerative")
ENCODER_FITS = ("lstsq", "mean")


@dataclass
class DistillConfig:
    """How a large SAE of N latents becomes a G-latent one (see progressive_sae.distill)."""

    sample_rows: int = 16384
    """Activation rows read for latent statistics and for the closed-form fits."""
    families: str = "kmeans"
    """'kmeans': mass-weighted spherical k-means of decoder rows seeded with the top-G
    latents by E[z²]; 'agglomerative': average-linkage clustering into exactly G clusters."""
    decoder_weight: float = 1.0
    """Agglomerative only: similarity = w·decoder cosine + (1 − w)·activation correlation."""
    seed_max_cosine: float = 0.9
    """k-means seeds: a latent whose decoder cosine with an already chosen seed exceeds this
    is skipped (it is a split sibling), unless too few latents are left."""
    min_cosine: float = 0.5
    """k-means: a latent whose decoder cosine with every family direction is below this
    joins no family (dropped, as truncation drops it); −1 = every latent joins one. 0.5
    measured better than −1 in 5 of 6 benchmark cases (benchmarks/distill.py variants)."""
    kmeans_iters: int = 10
    """Reassignment rounds of the k-means families."""
    encoder_fit: str = "mean"
    """'lstsq': ridge fit of the family's activation on (x − b_dec); 'mean': the
    activation-weighted mean of the members' encoder rows and biases."""
    ridge: float = 1e-4
    """Ridge of the encoder fit, relative to the mean diagonal of the input covariance."""
    refit_rounds: int = 3
    """Rounds of refitting decoder rows and b_dec by least squares on the new SAE's code
    (0 = keep the merged directions)."""
    tune_tokens: int = 0
    """Fine-tune budget on the activations after merging (0 = none)."""
    tune_batch_size: int = 1024
    """Batch size of the fine-tune."""
    tune_lr: float | None = None
    """Peak learning rate of the fine-tune; None = 0.3 × the trainer's default for G latents
    (distill.tune.FINE_TUNE_LR_FACTOR)."""
    batch_size: int = 4096
    """Rows per chunk when encoding the sample."""
    seed: int = 0
    """Seed of the fine-tune (sampling is otherwise deterministic)."""

    def __post_init__(self) -> None:
        if self.families not in FAMILY_METHODS:
            raise PSAEError(f"families={self.families!r}: expected one of {FAMILY_METHODS}")
        if self.encoder_fit not in ENCODER_FITS:
            raise PSAEError(f"encoder_fit={self.encoder_fit!r}: expected one of {ENCODER_FITS}")
        for name in ("sample_rows", "batch_size", "tune_batch_size", "kmeans_iters"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PSAEError(f"{name}={value!r}: expected a positive integer")
        if isinstance(self.refit_rounds, bool) or not isinstance(self.refit_rounds, int) \
                or self.refit_rounds < 0:
            raise PSAEError(f"refit_rounds={self.refit_rounds!r}: expected an integer ≥ 0")
        if isinstance(self.tune_tokens, bool) or not isinstance(self.tune_tokens, int) \
                or self.tune_tokens < 0:
            raise PSAEError(f"tune_tokens={self.tune_tokens!r}: expected an integer ≥ 0")
        if 0 < self.tune_tokens < self.tune_batch_size:
            raise PSAEError(f"tune_tokens={self.tune_tokens}: expected 0 or at least one batch "
                            f"(tune_batch_size={self.tune_batch_size})")
        if not 0.0 <= self.decoder_weight <= 1.0:
            raise PSAEError(f"decoder_weight={self.decoder_weight}: expected a number in [0, 1]")
        if not self.ridge >= 0:
            raise PSAEError(f"ridge={self.ridge}: expected a number ≥ 0")
        if self.tune_lr is not None and not self.tune_lr > 0:
            raise PSAEError(f"tune_lr={self.tune_lr}: expected a positive number")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
