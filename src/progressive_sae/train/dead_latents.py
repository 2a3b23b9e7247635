"""Which latents have stopped firing: the input to AuxK and the dead-fraction metric."""

from __future__ import annotations

import torch

from progressive_sae.sae.base import SparseCode


class DeadLatentTracker:
    """Tokens seen since each latent last fired; dead once that exceeds a window."""

    def __init__(self, num_latents: int, window_tokens: int, device: torch.device | str = "cpu"):
        self.window_tokens = window_tokens
        self.tokens_since_fired = torch.zeros(num_latents, dtype=torch.int64, device=device)

    def fired_counts(self, code: SparseCode) -> torch.Tensor:
        """How many inputs of the batch each latent fired on."""
        active = code.indices[code.values > 0]
        return torch.bincount(active, minlength=self.tokens_since_fired.numel())

    def update(self, fired: torch.Tensor, tokens: int) -> None:
        self.tokens_since_fired += tokens
        self.tokens_since_fired[fired > 0] = 0

    def dead_mask(self) -> torch.Tensor:
        return self.tokens_since_fired >= self.window_tokens

    def dead_fraction(self) -> float:
        return float(self.dead_mask().float().mean())
