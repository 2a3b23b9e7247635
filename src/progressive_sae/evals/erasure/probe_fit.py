"""The SCR/TPP probes, by the recipe the erasure config names ('saebench' or 'logistic')."""

from __future__ import annotations

import math

import numpy as np

from progressive_sae.evals.erasure.config import ErasureConfig
from progressive_sae.evals.probing.adamw import train_adamw_probe
from progressive_sae.evals.probing.probes import LinearProbe, fit_probe


def erasure_probe(x: np.ndarray, y: np.ndarray, x_select: np.ndarray, y_select: np.ndarray,
                  config: ErasureConfig, seed: int) -> LinearProbe:
    """SAEBench's AdamW probe (epoch kept on (x_select, y_select), as SAEBench keeps it on
    its test set), or our standardised logistic regression (x_select unused)."""
    if config.probe == "saebench":
        return train_adamw_probe(x, y, x_select, y_select, config.adamw, seed).probe
    return fit_probe(x, y, config.c, config.max_iter)


def one_vs_rest_rows(labels: np.ndarray, positive: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of `positive` plus as many others, drawn evenly from each other class
    (SAEBench's `prepare_probe_data`: ceil(P / classes) per class, then P of those)."""
    pos = np.flatnonzero(labels == positive)
    others = [c for c in np.unique(labels) if c != positive]
    per = math.ceil(len(pos) / max(1, len(others)))
    neg = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per] for c in others])
    neg = rng.permutation(neg)[:len(pos)]
    return np.sort(np.concatenate([pos, neg]))
