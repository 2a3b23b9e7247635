"""Data-dependent initialisation."""

from __future__ import annotations

import torch


def geometric_median(
    points: torch.Tensor, iterations: int = 100, tol: float = 1e-6
) -> torch.Tensor:
    """The point minimising Σ ||p - y|| (Weiszfeld's algorithm), started at the mean."""
    points = points.double()
    y = points.mean(0)
    for _ in range(iterations):
        weights = 1.0 / torch.linalg.vector_norm(points - y, dim=1).clamp_min(1e-12)
        new = (weights[:, None] * points).sum(0) / weights.sum()
        moved = torch.linalg.vector_norm(new - y)
        y = new
        if moved <= tol * torch.linalg.vector_norm(y).clamp_min(1.0):
            break
    return y.float()
