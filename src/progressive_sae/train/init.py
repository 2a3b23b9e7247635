"""Data-dependent initialisation."""

from __future__ import annotations

import torch

CHUNK_ROWS = 1024
"""Rows converted to float64 at a time: the sample itself stays in its own dtype, so the
initialisation never holds more than a few MB of temporaries (no fragmented heap to keep)."""


def geometric_median(
    points: torch.Tensor, iterations: int = 100, tol: float = 1e-6
) -> torch.Tensor:
    """The point minimising Σ ||p - y|| (Weiszfeld's algorithm), started at the mean."""
    chunks = points.split(CHUNK_ROWS)
    y = sum(c.double().sum(0) for c in chunks) / points.shape[0]
    for _ in range(iterations):
        total = torch.zeros_like(y)
        weight_sum = y.new_zeros(())
        for chunk in chunks:
            c = chunk.double()
            weights = 1.0 / torch.linalg.vector_norm(c - y, dim=1).clamp_min(1e-12)
            total += weights @ c
            weight_sum += weights.sum()
        new = total / weight_sum
        moved = torch.linalg.vector_norm(new - y)
        y = new
        if moved <= tol * torch.linalg.vector_norm(y).clamp_min(1.0):
            break
    return y.float()
