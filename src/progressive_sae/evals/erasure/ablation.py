"""Which latents to ablate, and the activations once they are ablated.

Attribution (SAEBench): latent j scores (mean pooled activation difference between the
classes on the training texts) × (probe weight · W_dec[j]). TPP keeps only the positive
class's excess (difference clamped at 0); SCR ranks by the absolute score. As SAEBench's
`select_top_n_features`: k = min(n, number of non-zero scores), and the k highest scores
are ablated, so once the positive scores run out zero-score latents come before negative
ones (ties: lower index, where torch.topk leaves the order unspecified).

Ablation keeps the SAE's error term: x' = x − Σ_{j ablated} z_j W_dec[j] at every token.
The probes read the per-text mean of x', and the mean is linear, so the mean of x' is the
mean residual minus Σ_j (mean z_j) W_dec[j]: computed here on the pooled rows directly.
"""

from __future__ import annotations

import numpy as np


def attribution(z_train: np.ndarray, positive: np.ndarray, probe_weight: np.ndarray,
                w_dec: np.ndarray, clamp: bool, absolute: bool) -> np.ndarray:
    """[G] score of each latent for one probe."""
    positive = np.asarray(positive, dtype=bool)
    diff = z_train[positive].mean(0) - z_train[~positive].mean(0)
    if clamp:
        diff = np.maximum(diff, 0.0)
    effects = diff * (w_dec @ probe_weight)
    return np.abs(effects) if absolute else effects


def top_latents(effects: np.ndarray, n: int) -> np.ndarray:
    """The k = min(n, non-zero scores) highest-scoring latents (ties: lower index)."""
    k = min(n, int(np.count_nonzero(effects)))
    return np.argsort(-effects, kind="stable")[:k]


def ablate(x: np.ndarray, z: np.ndarray, w_dec: np.ndarray, latents: np.ndarray) -> np.ndarray:
    """Pooled activations with `latents` removed: x − z[:, S] @ W_dec[S]."""
    if len(latents) == 0:
        return x
    return x - z[:, latents] @ w_dec[latents]
