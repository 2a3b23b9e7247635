"""All Matryoshka reconstructions from ONE sparse decode (SPEC §1).

Latents are split into groups by the nested sizes m_1 < … < m_G = N. Each input's active
latents are sorted, each group's contribution is decoded as one bag, and running sums give
x̂_{m_i} = x̂_{m_{i-1}} + group_i. Cost O(B·k·d + B·G·d) instead of O(G·B·k·d).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from progressive_sae.kernels.row_accumulate import accumulate_rows
from progressive_sae.kernels.sparse_decode import bagged_decode, entry_dots


def group_contributions(
    values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor, boundaries: torch.Tensor
) -> torch.Tensor:
    """[B, G, d]: the decode of each input's latents in [m_{i-1}, m_i), for each group i."""
    batch, width = indices.shape
    num_groups = boundaries.numel()
    sorted_indices, order = torch.sort(indices, dim=1)
    sorted_values = torch.gather(values, 1, order)
    group = torch.searchsorted(boundaries, sorted_indices, right=True)
    # Latents past the last boundary belong to no group: park them, weightless, in the last.
    beyond = group >= num_groups
    if beyond.any():
        sorted_values = sorted_values.masked_fill(beyond, 0.0)
        group = group.clamp(max=num_groups - 1)
    rows = torch.arange(batch, device=indices.device).unsqueeze(1)
    bag_of_entry = (rows * num_groups + group).reshape(-1)
    offsets = torch.searchsorted(
        bag_of_entry, torch.arange(batch * num_groups, device=indices.device)
    )
    out = bagged_decode(
        sorted_values.reshape(-1), sorted_indices.reshape(-1), bag_of_entry, offsets, W_dec
    )
    return out.view(batch, num_groups, -1)


def prefix_decode(
    values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor, granularities: torch.Tensor
) -> torch.Tensor:
    """[B, G, d]: x̂ without b_dec using only latents < m_i, for each granularity m_i.

    `granularities` must be strictly increasing; latents ≥ the last one are ignored.
    """
    parts = group_contributions(values, indices, W_dec, granularities)
    return torch.cumsum(parts, dim=1)


def prefix_decode_reference(
    values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor, granularities: torch.Tensor
) -> torch.Tensor:
    """Plain PyTorch: one dense decode per granularity from a dense code."""
    dense = torch.zeros(
        indices.shape[0], W_dec.shape[0], dtype=values.dtype, device=values.device
    ).scatter_add(1, indices, values)
    return torch.stack([dense[:, :m] @ W_dec[:m] for m in granularities.tolist()], dim=1)


def _decode_groups(
    flat_indices: torch.Tensor, flat_values: torch.Tensor, bag_starts: torch.Tensor,
    starts: list[int], W_dec: torch.Tensor, batch: int,
) -> list[torch.Tensor]:
    """[B, d] decode of each group's entries (sorted by group, then input)."""
    parts = []
    for g in range(len(starts) - 1):
        a, b = starts[g], starts[g + 1]
        parts.append(F.embedding_bag(
            flat_indices[a:b], W_dec, bag_starts[g * batch:(g + 1) * batch] - a,
            mode="sum", per_sample_weights=flat_values[a:b],
        ))
    return parts


RESIDUAL_ROWS = 256
"""Rows per block of the residual walk. The walk is bound by memory bandwidth (G decodes
read, G gradients written); a [256, 768] block of every group stays in cache between the
forward and the backward half (B=4096, d=768, G=5: 10.6 ms in blocks of 256, 12.5 in 512,
14.3 in 1024, 60 in whole-batch passes on 2 threads)."""


def _walk(
    target: torch.Tensor, parts: list[torch.Tensor], coefficients: torch.Tensor,
    with_gradients: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sq [G], final residual) for e_g = target - Σ_{g' ≤ g} part_g'.

    With `with_gradients`, each part's memory then holds d(Σ_m c_m sq_m)/d part_g =
    -2 Σ_{m ≥ g} c_m e_m, computed block by block right after the block's errors.
    """
    batch, num_groups = target.shape[0], len(parts)
    scale = (-2.0 * coefficients).tolist()
    residual = target.detach().clone()
    block_sq = target.new_empty(-(-batch // RESIDUAL_ROWS), num_groups)
    for i, lo in enumerate(range(0, batch, RESIDUAL_ROWS)):
        error = residual[lo:lo + RESIDUAL_ROWS]
        flat = error.view(-1)
        blocks = [part[lo:lo + RESIDUAL_ROWS] for part in parts]
        for g, block in enumerate(blocks):
            error.sub_(block)
            torch.dot(flat, flat, out=block_sq[i, g])
        if not with_gradients:
            continue
        # Walk back: e_{g-1} = e_g + part_g, then part_g's memory takes its gradient.
        error = error.clone()
        gradient = torch.mul(error, scale[-1])
        for g in range(num_groups - 1, -1, -1):
            if g < num_groups - 1:
                gradient.add_(error, alpha=scale[g])
            if g > 0:
                error.add_(blocks[g])
            blocks[g].copy_(gradient)
    return block_sq.sum(0), residual


class _NestedSquaredErrors(torch.autograd.Function):
    """loss = Σ_m c_m sq_m, sq_m = Σ_b ||target_b - Σ_{g ≤ m} part_g[b]||², where part_g
    decodes group g's latents and the coefficients c are constants.

    The entries are sorted by (group, input) and each group is decoded as one embedding_bag
    over the inputs ([B, d] each: one bag per input and group was twice as slow). Because c
    is known up front, the forward computes the gradient of every group's decode while
    each block of rows is still in cache, over that decode's memory; the backward only
    maps them onto the code and the decoder, group by group into disjoint latent ranges of
    one [N, d] buffer. No [B, G, d] tensor and no dense code are ever formed.
    """

    @staticmethod
    def forward(ctx, values, indices, W_dec, target, boundaries, coefficients):
        batch, width = indices.shape
        num_groups = boundaries.numel()
        group = torch.searchsorted(boundaries, indices, right=True)  # G = past the last
        rows = torch.arange(batch, device=indices.device).unsqueeze(1).expand(batch, width)
        key = (group * batch + rows).reshape(-1)
        # The entries are already in input order: a stable sort by group alone orders them
        # by (group, input), and small keys sort ~10x faster than the int64 key.
        group_key = group.to(torch.uint8 if num_groups < 255 else torch.int32).reshape(-1)
        order = torch.argsort(group_key, stable=True)
        sorted_key = key[order]
        bag_starts = torch.zeros(num_groups * batch + 1, dtype=torch.int64,
                                 device=indices.device)
        torch.cumsum(torch.bincount(sorted_key, minlength=(num_groups + 1) * batch)
                     [:num_groups * batch], 0, out=bag_starts[1:])
        flat_indices = indices.reshape(-1)[order]
        flat_values = values.detach().reshape(-1)[order].to(W_dec.dtype)
        starts = bag_starts[::batch].tolist()  # first entry of each group, and the end
        parts = _decode_groups(flat_indices, flat_values, bag_starts, starts, W_dec, batch)
        coefficients = coefficients.detach().to(target.dtype)
        with_gradients = any(ctx.needs_input_grad)
        sq, residual = _walk(target, parts, coefficients, with_gradients)
        ctx.save_for_backward(order, sorted_key, bag_starts, flat_indices, flat_values,
                              W_dec, target, boundaries, coefficients)
        ctx.starts, ctx.value_shape = starts, values.shape
        ctx.gradients = parts if with_gradients else None
        ctx.mark_non_differentiable(sq, residual)
        return coefficients.dot(sq), sq, residual

    @staticmethod
    def backward(ctx, grad_loss, _grad_sq, _grad_residual):
        (order, sorted_key, bag_starts, flat_indices, flat_values, W_dec, target,
         boundaries, coefficients) = ctx.saved_tensors
        batch, num_groups, starts = target.shape[0], boundaries.numel(), ctx.starts
        gradients, ctx.gradients = ctx.gradients, None  # released group by group below
        if gradients is None:  # a second backward (retain_graph): decode and walk again
            gradients = _decode_groups(flat_indices, flat_values, bag_starts, starts, W_dec,
                                       batch)
            _walk(target, gradients, coefficients, with_gradients=True)
        upstream = float(grad_loss)
        bounds = [0, *boundaries.tolist()]
        want_values, want_W = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        grad_sorted = flat_values.new_zeros(flat_values.shape) if want_values else None
        grad_W = torch.empty_like(W_dec) if want_W else None
        coeffs = flat_values if upstream == 1.0 else flat_values * upstream
        for g in range(num_groups):
            # Group g's gradient is dropped once used: the decoder gradient's pages are
            # touched one latent range at a time, so the two never add up at the peak.
            grad_part = gradients[g] if g == 0 else gradients.pop(1)
            a, b = starts[g], starts[g + 1]
            bag = sorted_key[a:b] - g * batch
            offsets = bag_starts[g * batch:(g + 1) * batch] - a
            if want_values and b > a:
                grad_sorted[a:b] = entry_dots(grad_part, W_dec, flat_indices[a:b], offsets, bag)
            if want_W:
                lo, hi = bounds[g], bounds[g + 1]
                if b > a:
                    accumulate_rows(flat_indices[a:b] - lo, bag, coeffs[a:b], grad_part,
                                    hi - lo, out=grad_W[lo:hi])
                else:
                    grad_W[lo:hi].zero_()
        if want_W and bounds[-1] < W_dec.shape[0]:
            grad_W[bounds[-1]:].zero_()  # latents past the last granularity are not decoded
        grad_values = None
        if want_values:
            grad_values = grad_sorted.new_zeros(grad_sorted.shape)
            grad_values[order] = grad_sorted if upstream == 1.0 else grad_sorted * upstream
            grad_values = grad_values.view(ctx.value_shape)
        grad_target = gradients[0].mul_(-upstream)
        return grad_values, None, grad_W, grad_target, None, None


def nested_squared_errors(
    values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor,
    granularities: torch.Tensor, target: torch.Tensor, coefficients: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Σ_i c_i sq_i, sq [G], final residual target - x̂_N) from one sparse decode, where
    sq_i = Σ||target - x̂_{m_i}||² without b_dec.

    `target` is x - b_dec; `granularities` strictly increasing (latents ≥ the last one are
    ignored); `coefficients` [G] are constants (no gradient flows into them). Only the
    weighted sum is differentiable; sq and the residual (AuxK's target) are detached.
    """
    return _NestedSquaredErrors.apply(values, indices, W_dec, target, granularities,
                                      coefficients)


def nested_squared_errors_reference(
    values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor,
    granularities: torch.Tensor, target: torch.Tensor, coefficients: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plain PyTorch: dense decodes per granularity, then squared errors."""
    x_hats = prefix_decode_reference(values, indices, W_dec, granularities)
    errors = target.unsqueeze(1) - x_hats
    sq = errors.pow(2).sum(dim=(0, 2))
    return coefficients.detach().to(sq.dtype).dot(sq), sq.detach(), errors[:, -1].detach()
