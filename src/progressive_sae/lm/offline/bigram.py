"""The bigram baseline the offline LM must beat: an add-k smoothed count table.

``P(b | a) = (C[a, b] + k) / (C[a] + k·V)``, with counts from the training (input, target)
pairs; held-out CE is the mean of ``-ln P(target | input)`` over the same pairs the LM is
scored on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_K_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
"""Smoothing constants tried when none is given; the best held-out one is reported."""


def bigram_counts(inputs: torch.Tensor, targets: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """[V, V] int64 table: C[a, b] = how often target b follows input a."""
    a = inputs.reshape(-1).long()
    b = targets.reshape(-1).long()
    if a.shape != b.shape:
        raise ValueError(f"inputs and targets differ in size: {a.numel()} vs {b.numel()}")
    flat = torch.bincount(a * vocab_size + b, minlength=vocab_size * vocab_size)
    return flat.view(vocab_size, vocab_size)


def bigram_cross_entropy(counts: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
                         k: float) -> float:
    """Mean next-token CE in nats of the add-k table on (input, target) pairs."""
    if k <= 0:
        raise ValueError(f"k must be > 0, got {k}")
    vocab_size = counts.shape[1]
    a = inputs.reshape(-1).long()
    b = targets.reshape(-1).long()
    pair = counts[a, b].double()
    row = counts.sum(dim=1).double()[a]
    logp = torch.log(pair + k) - torch.log(row + k * vocab_size)
    return float(-logp.mean())


def best_bigram_cross_entropy(
    counts: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
    ks: Sequence[float] = DEFAULT_K_GRID,
) -> tuple[float, float]:
    """(CE, k) for the k in `ks` with the lowest held-out CE: the strongest table on the grid."""
    results = [(bigram_cross_entropy(counts, inputs, targets, k), k) for k in ks]
    return min(results)
