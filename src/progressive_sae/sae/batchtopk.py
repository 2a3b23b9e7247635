"""BatchTopK SAE (Bussmann et al.): keep the k·B largest pre-activations of the batch.

At inference a single threshold θ — a running estimate of the smallest activation the
batch rule keeps — replaces the batch rule, so each input is encoded on its own.
"""

from __future__ import annotations

import torch

from progressive_sae.kernels import BatchTopK, SelectionRule, Threshold
from progressive_sae.sae.base import SparseAutoencoder, SparseCode
from progressive_sae.sae.config import SAEConfig

THRESHOLD_MOMENTUM = 0.99
"""Weight of the old θ in its running average (per training step)."""


class BatchTopKSAE(SparseAutoencoder):
    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        self.register_buffer("threshold", torch.tensor(-1.0))
        """θ for inference; negative until training has seen a batch."""

    def rule(self) -> SelectionRule:
        if self.training or self.threshold < 0:
            return BatchTopK(self.cfg.k)
        return Threshold(self.threshold)

    def rule_at(self, granularity: int) -> SelectionRule:
        if self.training or self.threshold < 0:
            return super().rule_at(granularity)
        return Threshold(self.threshold)  # θ is per SAE, so a truncated SAE keeps the same rule

    @torch.no_grad()
    def observe_training_code(self, code: SparseCode) -> None:
        active = code.values[code.values > 0]
        if active.numel() == 0:
            return
        smallest = active.min().to(self.threshold.dtype)
        if self.threshold < 0:
            self.threshold.copy_(smallest)
        else:
            self.threshold.lerp_(smallest, 1 - THRESHOLD_MOMENTUM)

    def shared_tensors(self) -> dict[str, torch.Tensor]:
        return {"threshold": self.threshold}
