"""Turning any trained SAE into a progressive coder: rank latents, permute, truncate (SPEC §2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from progressive_sae.errors import PSAEError
from progressive_sae.metrics import evaluate_reconstruction, evaluation_batches
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.config import SAEConfig

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
    sae: SparseAutoencoder, data: object, by: str = "mean_sq", max_rows: int | None = None,
    eval_data: object = None,
) -> SparseAutoencoder:
    """A copy of `sae` with latents reordered most-important first.

    Its metadata records the ranking (`permuted_by`) and the rows it was measured on
    (`permuted_rows`); with held-out `eval_data`, also the FVU at G = N/64 … N
    (`FVU_TABLE_KEY`, see `fvu_table`), which `psae info` prints.
    """
    if by not in RANKINGS:
        raise PSAEError(f"ranking {by!r}: expected one of {RANKINGS}")
    stats = latent_statistics(sae, data, max_rows=max_rows)
    permuted = sae.permute(ranking(stats, by))
    permuted.cfg.metadata["permuted_by"] = by
    permuted.cfg.metadata["permuted_rows"] = stats.rows
    if eval_data is not None:
        permuted.cfg.metadata[FVU_TABLE_KEY] = fvu_table(permuted, eval_data)
    return permuted


FVU_TABLE_KEY = "fvu_by_granularity"
"""Metadata key of a progressive SAE's latents-vs-FVU table."""


def fvu_table(
    sae: SparseAutoencoder, data: object, max_rows: int | None = None
) -> dict[str, Any]:
    """FVU on `data` at G = N/64, N/32, …, N (fixed relative sparsity, k_G = round(k·G/N)),
    as stored under FVU_TABLE_KEY: {num_latents, k, mode, rows, points: [{granularity, k,
    fvu}]}. Sizes a TopK rule cannot use (k_G ≥ G) are left out."""
    n = sae.num_latents
    sizes = sorted({max(1, n >> shift) for shift in range(6, -1, -1)})
    points, rows = [], 0
    for g in sizes:
        if g < n and (g < 2 or sae.relative_k(g) >= g) and sae.cfg.activation != "jumprelu":
            continue
        result = evaluate_reconstruction(sae, data, g, "relative", max_rows=max_rows)
        k = sae.cfg.k if g == n else sae.relative_k(g)
        points.append({"granularity": g, "k": k, "fvu": result.fvu})
        rows = result.rows
    return {"num_latents": n, "k": sae.cfg.k, "mode": "relative", "rows": rows,
            "points": points}


def progressive_summary(cfg: SAEConfig) -> dict[str, Any]:
    """What an SAE's config says about progressive coding: whether its latents were
    ranked (by what, on how many rows), its Matryoshka granularities, and its FVU table
    (only the rows G ≤ N of this SAE, which may be a truncation of the one measured)."""
    table = cfg.metadata.get(FVU_TABLE_KEY)
    if isinstance(table, dict) and isinstance(table.get("points"), list):
        points = [p for p in table["points"]
                  if isinstance(p, dict) and p.get("granularity", 0) <= cfg.num_latents]
        table = {**table, "points": points}
    else:
        table = None
    return {
        "permuted": "permuted_by" in cfg.metadata,
        "ranked_by": cfg.metadata.get("permuted_by"),
        "ranked_on_rows": cfg.metadata.get("permuted_rows"),
        "matryoshka_granularities": cfg.granularities,
        FVU_TABLE_KEY: table,
    }
