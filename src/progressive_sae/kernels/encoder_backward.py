"""Encoding with a sparse backward pass.

Forward: one dense matmul pre = (x - b_dec) W_encᵀ + b_enc, then an activation rule picks
each input's active latents. Backward: only the selected entries carry gradient, so

    dW_enc[j] = Σ_b dz[b, j] · x_c[b]      (a sparse row accumulation, not a B×N×d matmul)
    db_enc[j] = Σ_b dz[b, j]
    dx_c[b]   = Σ_j dz[b, j] · W_enc[j]    (an embedding_bag)

When the fast matmul dtype is bf16, the bf16 product only *selects* latents; the selected
values are recomputed exactly in fp32, so gradients and outputs stay fp32-accurate.

When the rules are blockwise (`block_rules.BlockRule`), the pre-activations are computed one
block of batch rows at a time into one reused buffer and each block's candidates are kept:
the B × N matrix (256 MB at B=4096, N=16384) never exists whole.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from progressive_sae.kernels.block_rules import BlockRule, Code, concat_rows
from progressive_sae.kernels.row_accumulate import accumulate_rows
from progressive_sae.kernels.sparse_decode import entry_dots

BLOCK_BYTES = 64 << 20
"""Largest block of pre-activations: 1024 rows at N=16384 in fp32."""
BLOCK_ROWS = 1024
"""Rows per block when BLOCK_BYTES allows: at d=768, N=16384 the GEMM then runs at the
whole matrix's speed (bf16 172 ms for 4096 rows in blocks of 1024, 171 in blocks of 2048;
fp32 657 vs 634), and more rows would only hold more memory."""

# Picks active latents from dense pre-activations: returns (values, indices), both [B, K].
Selector = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _exact_values(
    x_c: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, indices: torch.Tensor
) -> torch.Tensor:
    """pre[b, indices[b, j]] in fp32 via one dot product per selected entry."""
    batch, width = indices.shape
    offsets = torch.arange(0, batch * width, width, device=x_c.device)
    bag = torch.arange(batch, device=x_c.device).repeat_interleave(width)
    flat = indices.reshape(-1)
    dots = entry_dots(x_c, W_enc, flat, offsets, bag)
    return dots.view(batch, width) + b_enc[indices]


def dense_pre_activations(
    x_c: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, matmul_dtype: torch.dtype
) -> torch.Tensor:
    """(x - b_dec) W_encᵀ + b_enc, multiplied in `matmul_dtype`."""
    if matmul_dtype == x_c.dtype:
        return torch.addmm(b_enc, x_c, W_enc.t())
    return torch.addmm(
        b_enc.to(matmul_dtype), x_c.to(matmul_dtype), W_enc.to(matmul_dtype).t()
    )


def block_rows(batch: int, num_latents: int, itemsize: int, rows: int | None = None) -> int:
    """Rows per block: BLOCK_ROWS within BLOCK_BYTES of pre-activations, or `rows`."""
    wanted = rows or min(BLOCK_ROWS, BLOCK_BYTES // max(1, num_latents * itemsize))
    return max(1, min(batch, wanted))


def select_in_blocks(
    x_c: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, rules: list[BlockRule],
    matmul_dtype: torch.dtype, rows: int | None = None,
) -> list[Code]:
    """Each rule's choice over the batch, from blocks of rows of the pre-activations."""
    x_m, W_m, b_m = (t.to(matmul_dtype) for t in (x_c, W_enc, b_enc))
    batch, n = x_c.shape[0], W_enc.shape[0]
    step = block_rows(batch, n, x_m.element_size(), rows)
    buffer = x_m.new_empty(step, n)
    picked: list[list[Code]] = [[] for _ in rules]
    for start in range(0, batch, step):
        block = buffer[: min(step, batch - start)]
        torch.addmm(b_m, x_m[start:start + step], W_m.t(), out=block)
        for r, rule in enumerate(rules):
            picked[r].append(rule.pick(block))
    del buffer

    def full_rows(which: torch.Tensor) -> torch.Tensor:
        return torch.addmm(b_m, x_m[which], W_m.t())

    return [rule.finish(concat_rows(p), full_rows, n) for rule, p in zip(rules, picked)]


def _select(
    x_c: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, select: Selector,
    aux_select: Selector | None, matmul_dtype: torch.dtype, rows_per_block: int | None,
) -> tuple[Code, Code | None]:
    rules = [select] if aux_select is None else [select, aux_select]
    if all(isinstance(r, BlockRule) for r in rules):
        codes = select_in_blocks(x_c, W_enc, b_enc, rules, matmul_dtype, rows_per_block)
        return codes[0], codes[1] if aux_select is not None else None
    pre = dense_pre_activations(x_c, W_enc, b_enc, matmul_dtype)
    return select(pre), aux_select(pre) if aux_select is not None else None


class _SparseEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_c, W_enc, b_enc, select, aux_select, matmul_dtype, rows_per_block):
        (values, indices), aux = _select(
            x_c, W_enc, b_enc, select, aux_select, matmul_dtype, rows_per_block
        )
        if matmul_dtype != x_c.dtype:
            values = _exact_values(x_c, W_enc, b_enc, indices).mul_(values != 0)
            if aux is not None:
                aux = (_exact_values(x_c, W_enc, b_enc, aux[1]).mul_(aux[0] != 0), aux[1])
        values = values.clamp_min(0)
        parts_v, parts_i = [values], [indices]
        if aux is not None:
            aux_values = aux[0].clamp_min(0)
            parts_v.append(aux_values)
            parts_i.append(aux[1])
        ctx.widths = [v.shape[1] for v in parts_v]
        ctx.save_for_backward(x_c, W_enc, torch.cat(parts_v, 1), torch.cat(parts_i, 1))
        if aux is None:  # autograd outputs must be tensors: an empty code stands for "none"
            aux_values, aux_indices = values.new_zeros(values.shape[0], 0), indices[:, :0]
        else:
            aux_indices = aux[1]
        ctx.mark_non_differentiable(indices, aux_indices)
        return values, indices, aux_values, aux_indices

    @staticmethod
    def backward(ctx, grad_values, _gi, grad_aux_values, _gai):
        x_c, W_enc, values, indices = ctx.saved_tensors
        grads = [
            g if g is not None else torch.zeros(values.shape[0], w, device=values.device)
            for g, w in zip([grad_values, grad_aux_values], ctx.widths)
        ][: len(ctx.widths)]
        # ReLU: entries that were clipped to zero (or are padding) pass no gradient.
        dz = torch.cat(grads, 1).mul(values > 0)
        batch, width = indices.shape
        flat_idx = indices.reshape(-1)
        flat_dz = dz.reshape(-1)
        rows = torch.arange(batch, device=x_c.device).repeat_interleave(width)
        grad_x = grad_W = grad_b = None
        if ctx.needs_input_grad[0]:
            offsets = torch.arange(0, batch * width, width, device=x_c.device)
            grad_x = F.embedding_bag(
                flat_idx, W_enc, offsets, mode="sum", per_sample_weights=flat_dz
            )
        if ctx.needs_input_grad[1]:
            grad_W = accumulate_rows(flat_idx, rows, flat_dz, x_c, W_enc.shape[0])
        if ctx.needs_input_grad[2]:
            grad_b = torch.zeros(W_enc.shape[0], dtype=dz.dtype, device=dz.device)
            grad_b.index_add_(0, flat_idx, flat_dz)
        return grad_x, grad_W, grad_b, None, None, None, None


def sparse_encode(
    x_c: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, select: Selector,
    aux_select: Selector | None = None, matmul_dtype: torch.dtype | None = None,
    rows_per_block: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(values, indices, aux_values, aux_indices) of the ReLU'd selected pre-activations.

    `x_c` is the input with b_dec already subtracted. `aux_select` (optional) picks a second
    code from the same pre-activations, e.g. the AuxK latents among the dead ones. When
    every rule is a `BlockRule`, latents are chosen from blocks of `rows_per_block` rows
    (default: about BLOCK_BYTES of pre-activations per block).
    """
    dtype = matmul_dtype or x_c.dtype
    values, indices, aux_values, aux_indices = _SparseEncode.apply(
        x_c, W_enc, b_enc, select, aux_select, dtype, rows_per_block
    )
    if aux_select is None:
        return values, indices, None, None
    return values, indices, aux_values, aux_indices


def sparse_encode_reference(
    x_c: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, select: Selector,
    aux_select: Selector | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Plain PyTorch: dense pre-activations with full autograd, then gather the selection."""
    pre = x_c @ W_enc.t() + b_enc

    def gather(rule: Selector) -> tuple[torch.Tensor, torch.Tensor]:
        picked, indices = rule(pre.detach())
        # Selectors pad with zero-valued entries; those stay zero.
        return torch.gather(pre, 1, indices).clamp_min(0) * (picked != 0), indices

    values, indices = gather(select)
    if aux_select is None:
        return values, indices, None, None
    return (values, indices, *gather(aux_select))
