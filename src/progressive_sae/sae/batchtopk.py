"""BatchTopK SAE (Bussmann et al.): keep the k·B largest pre-activations of the batch.

At inference a single threshold θ — a running estimate of the smallest activation the
batch rule keeps — replaces the batch rule, so each input is encoded on its own.
"""

from __future__ import annotations

import torch

from progressive_sae.sae.base import SparseAutoencoder, SparseCode
from progressive_sae.sae.config import SAEConfig

THRESHOLD_MOMENTUM = 0.99
"""Weight of the old θ in its running average (per training step)."""


def batch_topk_select(pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exactly the k·B largest entries of `pre`, as a [B, K] code padded with zeros.

    Candidates are each row's top `width` entries; a global top-k·B over them is exact
    unless some row had all its candidates kept, in which case `width` doubles.
    """
    batch, n = pre.shape
    total = k * batch
    width = min(n, 4 * k)
    while True:
        values, indices = pre.topk(width, dim=1, sorted=True)
        cutoff = values.reshape(-1).topk(total, sorted=False).values.min()
        keep = values >= cutoff
        if width == n or not keep[:, -1].any():
            break
        width = min(n, 2 * width)
    used = int(keep.sum(1).max().clamp_min(1))
    # Rows are sorted, so every kept entry lies in the first `used` columns.
    return (values[:, :used] * keep[:, :used]), indices[:, :used]


def threshold_select(
    pre: torch.Tensor, threshold: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entries above a threshold (scalar or per latent), as a [B, K] code padded with zeros."""
    above = pre > threshold
    width = int(above.sum(1).max().clamp_min(1))
    masked = pre.masked_fill(~above, 0.0)
    return masked.topk(width, dim=1, sorted=False)


class BatchTopKSAE(SparseAutoencoder):
    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        self.register_buffer("threshold", torch.tensor(-1.0))
        """θ for inference; negative until training has seen a batch."""

    def select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training or self.threshold < 0:
            return batch_topk_select(pre, self.cfg.k)
        return threshold_select(pre, self.threshold.to(pre.dtype))

    def selector_at(self, granularity: int):
        if self.training or self.threshold < 0:
            return super().selector_at(granularity)
        return self.select  # θ is per SAE, so a truncated SAE keeps the same rule

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
