"""Latents planted on single tokens of a real activation cache: a known-answer check for
explainers.

`plant_token_latents` writes a cache over the real one's token ids whose column j is the real
activation's norm (over the mean norm) where the token is planted token j and 0 elsewhere, and
returns an identity TopK SAE over it: latent j fires exactly on its token, with strengths that
vary as the real stream's do. Read through the real records and sampling, an explainer should
name each token (`names`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from progressive_sae.data.cache.reader import CachedActivations
from progressive_sae.data.cache.writer import CacheWriter
from progressive_sae.sae import SAEConfig, build_sae
from progressive_sae.sae.base import SparseAutoencoder


def plant_token_latents(real: CachedActivations, token_ids: Sequence[int], out: Path
                        ) -> SparseAutoencoder:
    """Write the planted cache to `out` (see the module docstring); the SAE that reads it."""
    table = real.token_table(0, len(real))
    norm = real.rows(0, len(real)).norm(dim=1).numpy()
    planted = np.zeros((len(real), len(token_ids)), np.float32)
    for j, token in enumerate(token_ids):
        hit = table[:, 2] == token
        planted[hit, j] = norm[hit] / norm.mean()
    meta = {k: real.manifest[k] for k in ("model", "hook", "ctx", "tokenizer")}
    writer = CacheWriter(out, dtype="float32", meta=meta)
    writer.add(planted, table[:, 2], table[:, 0], table[:, 1])
    writer.finish()
    n = len(token_ids)
    sae = build_sae(SAEConfig(d_in=n, num_latents=n + 1, k=1))
    with torch.no_grad():
        for weight in (sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec):
            weight.zero_()
        sae.W_enc[:n] = torch.eye(n)
        sae.W_dec[:n] = torch.eye(n)
    return sae


def names(explanation: str, token_text: str) -> bool:
    """The token's text, stripped, stands in the explanation as a word of its own."""
    edge = r"""[\s"'`.,]"""
    word = re.escape(token_text.strip().lower())
    return re.search(f"(^|{edge}){word}($|{edge})", explanation.lower()) is not None
