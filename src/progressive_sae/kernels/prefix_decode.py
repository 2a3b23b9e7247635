"""All Matryoshka reconstructions from ONE sparse decode (SPEC §1).

Latents are split into groups by the nested sizes m_1 < … < m_G = N. Each input's active
latents are sorted, each group's contribution is decoded as one bag, and running sums give
x̂_{m_i} = x̂_{m_{i-1}} + group_i. Cost O(B·k·d + B·G·d) instead of O(G·B·k·d).
"""

from __future__ import annotations

import torch

from progressive_sae.kernels.sparse_decode import bagged_decode


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


class _NestedSquaredErrors(torch.autograd.Function):
    """sq[m] = Σ_b ||target_b - Σ_{g ≤ m} parts[b, g]||² with one [B, d] running residual.

    The autograd version materialises cumsum(parts), the differences and their squares as
    [B, G, d] tensors in both passes; this one streams over the groups instead.
    """

    @staticmethod
    def forward(ctx, parts, target):
        residual = target.clone()
        sq = parts.new_empty(parts.shape[1])
        for g in range(parts.shape[1]):
            residual.sub_(parts[:, g])
            flat = residual.view(-1)
            sq[g] = torch.dot(flat, flat)
        ctx.save_for_backward(parts, residual)
        final = residual.detach().clone()
        ctx.mark_non_differentiable(final)
        return sq, final

    @staticmethod
    def backward(ctx, grad_sq, _grad_final):
        parts, residual = ctx.saved_tensors
        residual = residual.clone()
        grad_parts = torch.empty_like(parts)
        acc = torch.zeros_like(residual)  # Σ_{m ≥ g} grad_sq[m] · e_m
        for g in range(parts.shape[1] - 1, -1, -1):
            acc.add_(residual, alpha=float(grad_sq[g]))
            torch.mul(acc, -2.0, out=grad_parts[:, g])
            residual.add_(parts[:, g])  # e_{g-1} = e_g + part_g
        return grad_parts, acc.mul_(2.0)


def nested_squared_errors(
    values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor,
    granularities: torch.Tensor, target: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """([G] Σ||target - x̂_{m_i}||² without b_dec, final residual target - x̂_N) from one decode.

    `target` is x - b_dec. The residual is detached (for AuxK's target).
    """
    parts = group_contributions(values, indices, W_dec, granularities)
    return _NestedSquaredErrors.apply(parts, target)


def nested_squared_errors_reference(
    values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor,
    granularities: torch.Tensor, target: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain PyTorch: dense decodes per granularity, then squared errors."""
    x_hats = prefix_decode_reference(values, indices, W_dec, granularities)
    errors = target.unsqueeze(1) - x_hats
    return errors.pow(2).sum(dim=(0, 2)), errors[:, -1].detach()
