"""Each latent's nearest latents by decoder cosine similarity, in blocks of rows.

Memory stays at `block × N` similarities whatever N is (16k latents: 64 MB per block).
"""

from __future__ import annotations

import torch

from progressive_sae.errors import PSAEError


@torch.no_grad()
def nearest_by_decoder(
    W_dec: torch.Tensor, latents: torch.Tensor, count: int = 8, block: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of `latents` (indices into W_dec's rows): the `count` other rows with the
    largest cosine similarity, as (indices [L, count], cosines [L, count]), best first.

    Rows of zero norm (dead decoder rows) get cosine 0 with everything."""
    if W_dec.ndim != 2:
        raise PSAEError(f"decoder of shape {tuple(W_dec.shape)}: expected [num_latents, d]")
    n = W_dec.shape[0]
    count = min(count, n - 1)
    latents = torch.as_tensor(latents, dtype=torch.long).reshape(-1)
    if count < 1 or latents.numel() == 0:
        empty = torch.empty(latents.numel(), 0)
        return empty.long(), empty
    unit = W_dec.detach().float()
    unit = unit / torch.linalg.vector_norm(unit, dim=1, keepdim=True).clamp_min(1e-12)
    indices, cosines = [], []
    for start in range(0, latents.numel(), block):
        rows = latents[start:start + block]
        sims = unit[rows] @ unit.T
        sims[torch.arange(rows.numel()), rows] = -float("inf")  # a latent is not its neighbour
        values, where = sims.topk(count, dim=1)
        indices.append(where)
        cosines.append(values)
    return torch.cat(indices), torch.cat(cosines)
