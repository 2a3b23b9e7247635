"""TopK SAE (Gao et al. 2024): keep each input's k largest pre-activations, ReLU'd."""

from __future__ import annotations

from progressive_sae.kernels import SelectionRule, TopK
from progressive_sae.sae.base import SparseAutoencoder


class TopKSAE(SparseAutoencoder):
    def rule(self) -> SelectionRule:
        return TopK(self.cfg.k)
