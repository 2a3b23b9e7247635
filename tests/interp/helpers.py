"""Small caches with token ids and SAEs that fire on them, shared by the interp tests."""

from __future__ import annotations

import numpy as np
import torch

from progressive_sae import SAEConfig, build_sae
from progressive_sae.data.cache import CacheWriter

CTX = 20
VOCAB = 40


def token_cache(path, sequences=30, d=6, seed=0, tokens=True, ctx=CTX):
    """A cache of `sequences` windows of `ctx` tokens; activations depend on the token id
    (an embedding plus noise), so a latent aligned with a token's direction fires on it."""
    rng = np.random.default_rng(seed)
    n = sequences * ctx
    ids = rng.integers(0, VOCAB, n)
    embed = rng.standard_normal((VOCAB, d)).astype(np.float32)
    acts = embed[ids] + 0.1 * rng.standard_normal((n, d)).astype(np.float32)
    meta = {"model": "toy", "hook": "blocks.0", "ctx": ctx,
            "tokenizer": {"name": "", "vocab_size": VOCAB}}
    writer = CacheWriter(path, dtype="float32", rows_per_shard=128, meta=meta)
    writer.add(acts, ids if tokens else np.full(n, -1), np.arange(n) // ctx, np.arange(n) % ctx)
    writer.finish()
    return acts, ids, embed


def token_sae(d=6, n=24, k=3, seed=0, granularities=None, embed=None):
    """A TopK SAE; with `embed`, its first latents point at the first tokens' embeddings."""
    sae = build_sae(SAEConfig(d_in=d, num_latents=n, k=k, granularities=granularities))
    sae.reset_parameters(torch.Generator().manual_seed(seed))
    if embed is not None:
        with torch.no_grad():
            rows = torch.from_numpy(embed[: min(n, len(embed))])
            rows = rows / rows.norm(dim=1, keepdim=True)
            sae.W_dec[: len(rows)] = rows
            sae.W_enc.copy_(sae.W_dec)
    sae.use_reference_kernels = True
    return sae
