"""All Matryoshka reconstructions from ONE sparse decode (SPEC §1).

Latents are split into groups by the nested sizes m_1 < … < m_G = N. Each input's active
latents are sorted, each group's contribution is decoded as one bag, and running sums give
x̂_{m_i} = x̂_{m_{i-1}} + group_i. Cost O(B·k·d + B·G·d) instead of O(G·B·k·d).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from progressive_sae.kernels.row_accumulate import accumulate_rows
from progressive_sae.kernels.sparse_decode import bagged_decode

_SUM_MODE = 0  # aten's enum value for embedding_bag mode="sum"


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


class _NestedSquaredErrors(torch.autograd.Function):
    """sq[m] = Σ_b ||target_b - Σ_{g ≤ m} part_g[b]||², where part_g decodes group g's latents.

    The entries are sorted by (group, input) and each group is decoded as one embedding_bag
    over the inputs ([B, d] each: one bag per input and group was twice as slow). The
    forward streams one running residual over the groups; the backward walks them back,
    overwrites each group's decode with that group's gradient, and accumulates the decoder's
    gradient group by group into disjoint latent ranges of one [N, d] buffer. No [B, G, d]
    tensor and no dense code are ever formed.
    """

    @staticmethod
    def forward(ctx, values, indices, W_dec, target, boundaries):
        batch, width = indices.shape
        num_groups = boundaries.numel()
        group = torch.searchsorted(boundaries, indices, right=True)  # G = past the last
        rows = torch.arange(batch, device=indices.device).unsqueeze(1).expand(batch, width)
        key = (group * batch + rows).reshape(-1)
        order = torch.argsort(key, stable=True)
        sorted_key = key[order]
        bag_starts = torch.searchsorted(
            sorted_key, torch.arange(num_groups * batch + 1, device=indices.device)
        )
        flat_indices = indices.reshape(-1)[order]
        flat_values = values.detach().reshape(-1)[order].to(W_dec.dtype)
        starts = bag_starts[::batch].tolist()  # first entry of each group, and the end
        parts = _decode_groups(flat_indices, flat_values, bag_starts, starts, W_dec, batch)
        residual = target.clone()
        sq = target.new_empty(num_groups)
        for g, part in enumerate(parts):
            residual.sub_(part)
            flat = residual.view(-1)
            sq[g] = torch.dot(flat, flat)
        ctx.save_for_backward(order, sorted_key, bag_starts, flat_indices, flat_values,
                              W_dec, residual, boundaries)
        ctx.starts, ctx.parts = starts, parts
        ctx.value_shape = values.shape
        final = residual.detach().clone()
        ctx.mark_non_differentiable(final)
        return sq, final

    @staticmethod
    def backward(ctx, grad_sq, _grad_final):
        (order, sorted_key, bag_starts, flat_indices, flat_values, W_dec, residual,
         boundaries) = ctx.saved_tensors
        batch = residual.shape[0]
        num_groups, starts = boundaries.numel(), ctx.starts
        parts, ctx.parts = ctx.parts, None  # overwritten below: a second backward decodes anew
        if parts is None:
            parts = _decode_groups(flat_indices, flat_values, bag_starts, starts, W_dec, batch)
        bounds = [0, *boundaries.tolist()]
        want_values, want_W = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        grad_sorted = flat_values.new_zeros(flat_values.shape) if want_values else None
        grad_W = torch.empty_like(W_dec) if want_W else None
        residual = residual.clone()
        # grad_part = d loss / d part_g = -2 Σ_{m ≥ g} grad_sq[m] · e_m, built from the last
        # group down; each group's decode and decoder gradients read it before it moves on.
        grad_part = torch.mul(residual, -2.0 * float(grad_sq[-1]))
        for g in range(num_groups - 1, -1, -1):
            if g < num_groups - 1:
                grad_part.add_(residual, alpha=-2.0 * float(grad_sq[g]))
            a, b = starts[g], starts[g + 1]
            bag = sorted_key[a:b] - g * batch
            offsets = bag_starts[g * batch:(g + 1) * batch] - a
            if want_values and b > a:
                grad_sorted[a:b] = torch.ops.aten._embedding_bag_per_sample_weights_backward(
                    grad_part, W_dec, flat_indices[a:b], offsets, bag, _SUM_MODE, -1
                )
            if want_W:
                lo, hi = bounds[g], bounds[g + 1]
                if b > a:
                    accumulate_rows(flat_indices[a:b] - lo, bag, flat_values[a:b], grad_part,
                                    hi - lo, out=grad_W[lo:hi])
                else:
                    grad_W[lo:hi].zero_()
            if g > 0:
                residual.add_(parts[g])  # e_{g-1} = e_g + part_g
        if want_W and bounds[-1] < W_dec.shape[0]:
            grad_W[bounds[-1]:].zero_()  # latents past the last granularity are not decoded
        grad_values = None
        if want_values:
            grad_values = grad_sorted.new_zeros(grad_sorted.shape)
            grad_values[order] = grad_sorted
            grad_values = grad_values.view(ctx.value_shape)
        return grad_values, None, grad_W, grad_part.neg_(), None


def nested_squared_errors(
    values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor,
    granularities: torch.Tensor, target: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """([G] Σ||target - x̂_{m_i}||² without b_dec, final residual target - x̂_N) from one decode.

    `target` is x - b_dec; `granularities` strictly increasing (latents ≥ the last one are
    ignored). The residual is detached (for AuxK's target).
    """
    return _NestedSquaredErrors.apply(values, indices, W_dec, target, granularities)


def nested_squared_errors_reference(
    values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor,
    granularities: torch.Tensor, target: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain PyTorch: dense decodes per granularity, then squared errors."""
    x_hats = prefix_decode_reference(values, indices, W_dec, granularities)
    errors = target.unsqueeze(1) - x_hats
    return errors.pow(2).sum(dim=(0, 2)), errors[:, -1].detach()
