"""Activation sources behind one small interface (`ActivationSource`)."""

from progressive_sae.data.batching import iterate_batches
from progressive_sae.data.cache import CachedActivations, CacheWriter
from progressive_sae.data.source import (
    ActivationSource,
    IterableSource,
    NpySource,
    RowRange,
    TensorSource,
    as_source,
)
from progressive_sae.data.synthetic import SyntheticActivations, SyntheticConfig

__all__ = [
    "CacheWriter",
    "CachedActivations",
    "ActivationSource",
    "IterableSource",
    "NpySource",
    "SyntheticActivations",
    "SyntheticConfig",
    "RowRange",
    "TensorSource",
    "as_source",
    "iterate_batches",
]
