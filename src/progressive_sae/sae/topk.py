"""TopK SAE (Gao et al. 2024): keep each input's k largest pre-activations, ReLU'd."""

from __future__ import annotations

import torch

from progressive_sae.sae.base import SparseAutoencoder, topk_select


class TopKSAE(SparseAutoencoder):
    def select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return topk_select(pre, self.cfg.k)
