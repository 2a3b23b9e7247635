"""Training and held-out windows of the offline LM, cut from one stream of token ids.

Every document becomes ``<|endoftext|>`` + its tokens, all concatenated into one stream. A
window is ``[BOS] + stream[s : s + ctx]``: the model reads the first ctx tokens (BOS first,
as text fed by the extraction code starts with BOS) and predicts the next one at every
position, so every position embedding is trained. Each epoch shifts the chunk starts by a
seeded random offset and shuffles the chunks; held-out windows use offset 0.
"""

from __future__ import annotations

import random

import torch


def token_stream(docs: list[list[int]], sep_id: int) -> torch.Tensor:
    """All documents as one int64 stream, each preceded by the separator."""
    parts = []
    for ids in docs:
        parts.append(sep_id)
        parts.extend(ids)
    return torch.tensor(parts, dtype=torch.long)


def windows_at(stream: torch.Tensor, ctx: int, offset: int, bos_id: int) -> torch.Tensor:
    """[n, ctx+1] windows: BOS + consecutive ctx-token chunks of stream from `offset`."""
    n = (stream.numel() - offset) // ctx
    chunks = stream[offset: offset + n * ctx].view(n, ctx)
    bos = torch.full((n, 1), bos_id, dtype=torch.long)
    return torch.cat([bos, chunks], dim=1)


def epoch_windows(stream: torch.Tensor, ctx: int, bos_id: int, seed: int, epoch: int
                  ) -> torch.Tensor:
    """This epoch's training windows: a seeded random offset, then a seeded shuffle."""
    rng = random.Random(seed * 1_000_003 + epoch)
    offset = rng.randrange(ctx) if epoch > 0 else 0
    w = windows_at(stream, ctx, offset, bos_id)
    n = (stream.numel() - ctx + 1) // ctx  # the same count for every offset < ctx
    w = w[:n]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
    return w[order]
