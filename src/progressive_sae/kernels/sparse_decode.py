"""Decoding a sparse code: x̂ = Σ_j z_j · W_dec[j], touching only the active rows.

The fast path is an `embedding_bag` (sum mode, per-sample weights). Its backward computes
the code's gradient as one dot product per active entry, taken in latent order (131k
entries at N=16,384, d=768: 16.4 → 13.4 ms with Zipf-distributed latents, 24.3 → 12.5
uniform), and the decoder's gradient as a sparse row accumulation, so neither pass ever
forms the dense B × N code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from progressive_sae.kernels.row_accumulate import accumulate_rows

_SUM_MODE = 0  # aten's enum value for embedding_bag mode="sum"


def entry_dots(
    rows: torch.Tensor, weight: torch.Tensor, indices: torch.Tensor, offsets: torch.Tensor,
    bag_of_entry: torch.Tensor,
) -> torch.Tensor:
    """rows[bag_of_entry[e]] · weight[indices[e]] for every entry e (entries sorted by bag,
    `offsets` = each bag's first entry): one dot product per entry, never a dense B × N
    product. It is the per-sample-weight gradient of an embedding_bag, which aten exposes."""
    return torch.ops.aten._embedding_bag_per_sample_weights_backward(
        rows, weight, indices, offsets, bag_of_entry, _SUM_MODE, -1
    )


def entry_dots_in_latent_order(
    rows: torch.Tensor, weight: torch.Tensor, indices: torch.Tensor, bag_of_entry: torch.Tensor,
) -> torch.Tensor:
    """`entry_dots` with the entries taken in latent order: each row of `weight` is read
    once for all the entries that want it (2.3x faster than bag order at 4096 bags of 64
    entries, N=16384, d=768). Each entry's dot product is the same in any order."""
    if indices.numel() == 0:
        return rows.new_zeros(0)
    keys = indices.to(torch.int32) if weight.shape[0] < 2**31 else indices
    order = torch.argsort(keys)
    offsets = torch.zeros(1, dtype=indices.dtype, device=indices.device)
    out = torch.empty(indices.shape[0], dtype=rows.dtype, device=rows.device)
    out[order] = entry_dots(rows, weight, indices[order], offsets, bag_of_entry[order])
    return out


class _BaggedDecode(torch.autograd.Function):
    """out[bag] = Σ_{e in bag} values[e] · weight[indices[e]]; entries are sorted by bag."""

    @staticmethod
    def forward(ctx, values, indices, bag_of_entry, offsets, weight):
        out = F.embedding_bag(
            indices, weight, offsets, mode="sum", per_sample_weights=values.to(weight.dtype)
        )
        ctx.save_for_backward(values, indices, bag_of_entry, offsets, weight)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        values, indices, bag_of_entry, offsets, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_values = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_values = entry_dots_in_latent_order(grad_out, weight, indices,
                                                     bag_of_entry).to(values.dtype)
        if ctx.needs_input_grad[4]:
            grad_weight = accumulate_rows(
                indices, bag_of_entry, values, grad_out, weight.shape[0]
            ).to(weight.dtype)
        return grad_values, None, None, None, grad_weight


def bagged_decode(
    values: torch.Tensor, indices: torch.Tensor, bag_of_entry: torch.Tensor,
    offsets: torch.Tensor, weight: torch.Tensor,
) -> torch.Tensor:
    """Sum weighted rows of `weight` into bags (1-D entries sorted by bag; offsets = starts)."""
    return _BaggedDecode.apply(values, indices, bag_of_entry, offsets, weight)


def sparse_decode(values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """Σ_j values[b, j] · W_dec[indices[b, j]] for each row b; values/indices are [B, K]."""
    batch, width = indices.shape
    device = indices.device
    offsets = torch.arange(0, batch * width, width, device=device)
    bag_of_entry = torch.arange(batch, device=device).repeat_interleave(width)
    return bagged_decode(values.reshape(-1), indices.reshape(-1), bag_of_entry, offsets, W_dec)


def sparse_decode_reference(
    values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor
) -> torch.Tensor:
    """Plain PyTorch: scatter the code into a dense [B, N] matrix and multiply."""
    dense = torch.zeros(
        indices.shape[0], W_dec.shape[0], dtype=values.dtype, device=values.device
    ).scatter_add(1, indices, values)
    return dense @ W_dec
