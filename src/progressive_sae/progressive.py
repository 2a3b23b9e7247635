"""Turning any trained SAE into a progressive coder: rank latents, permute, truncate (SPEC §2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from progressive_sae.errors import PSAEError
from progressive_sae.metrics import evaluation_batches
from progressive_sae.sae.base import SparseAutoencoder

RANKINGS = ("mean_sq", "frequency")


@dataclass
class LatentStatistics:
    """Per-latent statistics of an SAE's code on a set of activations."""

    mean_sq: torch.Tensor
    """E[z_j²]."""
    frequency: torch.Tensor
    """E[1(z_j > 0)]."""
    mean: torch.Tensor
    """E[z_j]."""
    rows: int


@torch.no_grad()
def latent_statistics(
    sae: SparseAutoencoder, data: object, batch_size: int = 4096, max_rows: int | None = None
) -> LatentStatistics:
    was_training = sae.training
    sae.eval()
    n = sae.num_latents
    sq, freq, total = (torch.zeros(n, dtype=torch.float64) for _ in range(3))
    rows = 0
    for x in evaluation_batches(data, batch_size, max_rows):
        code = sae.encode(x.to(sae.W_dec.device))
        idx, val = code.indices.reshape(-1).cpu(), code.values.reshape(-1).double().cpu()
        sq.index_add_(0, idx, val * val)
        freq.index_add_(0, idx, (val > 0).double())
        total.index_add_(0, idx, val)
        rows += x.shape[0]
    sae.train(was_training)
    if rows == 0:
        raise PSAEError("no activations to rank the latents on")
    return LatentStatistics(sq / rows, freq / rows, total / rows, rows)


def rank_latents(
    sae: SparseAutoencoder, data: object, by: str = "mean_sq", batch_size: int = 4096,
    max_rows: int | None = None,
) -> torch.Tensor:
    """A permutation listing latents from most to least important (ties keep index order)."""
    if by not in RANKINGS:
        raise PSAEError(f"ranking {by!r}: expected one of {RANKINGS}")
    return ranking(latent_statistics(sae, data, batch_size, max_rows), by)


def ranking(stats: LatentStatistics, by: str = "mean_sq") -> torch.Tensor:
    """Latents from most to least important by `by` ('mean_sq' or 'frequency')."""
    if by not in RANKINGS:
        raise PSAEError(f"ranking {by!r}: expected one of {RANKINGS}")
    score = stats.mean_sq if by == "mean_sq" else stats.frequency
    return torch.sort(-score, stable=True).indices


def make_progressive(
    sae: SparseAutoencoder, data: object, by: str = "mean_sq", max_rows: int | None = None
) -> SparseAutoencoder:
    """A copy of `sae` with latents reordered most-important first."""
    perm = rank_latents(sae, data, by=by, max_rows=max_rows)
    permuted = sae.permute(perm)
    permuted.cfg.metadata["permuted_by"] = by
    return permuted
