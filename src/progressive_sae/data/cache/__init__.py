"""An on-disk cache of activations: sharded `.npy` files plus a checksummed manifest.

`format` holds the layout and its helpers, `writer` the resumable `CacheWriter`, `reader`
`CachedActivations` (an `ActivationSource`).
"""

from progressive_sae.data.cache.format import (
    MANIFEST,
    STORAGE,
    default_rows_per_shard,
    from_storage,
    manifest_path,
    read_manifest,
    to_storage,
)
from progressive_sae.data.cache.reader import CachedActivations, check_sae_fits
from progressive_sae.data.cache.writer import CacheWriter

__all__ = [
    "MANIFEST",
    "STORAGE",
    "CacheWriter",
    "CachedActivations",
    "check_sae_fits",
    "default_rows_per_shard",
    "from_storage",
    "manifest_path",
    "read_manifest",
    "to_storage",
]
