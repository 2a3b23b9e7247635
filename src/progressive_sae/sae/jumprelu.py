"""JumpReLU SAE (GemmaScope): z_j = pre_j · 1[pre_j > θ_j]. Inference only, for external SAEs."""

from __future__ import annotations

import torch

from progressive_sae.kernels import SelectionRule, Threshold
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.config import SAEConfig


class JumpReLUSAE(SparseAutoencoder):
    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        self.register_buffer("threshold", torch.zeros(cfg.num_latents))
        """θ_j of each latent."""

    def rule(self) -> SelectionRule:
        return Threshold(self.threshold)

    def rule_at(self, granularity: int) -> SelectionRule:
        return Threshold(self.threshold[:granularity])  # per-latent θ: no k to rescale

    def latent_tensors(self) -> dict[str, torch.Tensor]:
        return {**super().latent_tensors(), "threshold": self.threshold}
