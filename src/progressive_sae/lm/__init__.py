"""Hugging Face causal LMs: loading, hook points by name, activations and splicing."""

from progressive_sae.lm.hooks import (
    CrossEntropyResult,
    HookPoint,
    Replacement,
    activations,
    mean_ablation,
    resolve_hook,
    sae_splice,
    spliced_cross_entropy,
    zero_ablation,
)
from progressive_sae.lm.model import LanguageModel, find_blocks, load_lm

__all__ = [
    "CrossEntropyResult",
    "HookPoint",
    "LanguageModel",
    "Replacement",
    "activations",
    "find_blocks",
    "load_lm",
    "mean_ablation",
    "resolve_hook",
    "sae_splice",
    "spliced_cross_entropy",
    "zero_ablation",
]
