"""JumpReLU SAE (GemmaScope): z_j = pre_j · 1[pre_j > θ_j]. Inference only, for external SAEs."""

from __future__ import annotations

import torch

from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.batchtopk import threshold_select
from progressive_sae.sae.config import SAEConfig


class JumpReLUSAE(SparseAutoencoder):
    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        self.register_buffer("threshold", torch.zeros(cfg.num_latents))
        """θ_j of each latent."""

    def select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return threshold_select(pre, self.threshold[: pre.shape[1]].to(pre.dtype))

    def selector_at(self, granularity: int):
        return self.select  # per-latent θ: truncation is exact, no k to rescale

    def latent_tensors(self) -> dict[str, torch.Tensor]:
        return {**super().latent_tensors(), "threshold": self.threshold}
