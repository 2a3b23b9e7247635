"""Encoding with a sparse backward pass.

Forward: a fast dense product pre = (x - b_dec) W_encᵀ + b_enc proposes candidates and an
activation rule (`selection`) picks each input's active latents exactly, on the exact fp32
pre-activations. Backward: only the selected entries carry gradient, so

    dW_enc[j] = Σ_b dz[b, j] · x_c[b]      (a sparse row accumulation, not a B×N×d matmul)
    db_enc[j] = Σ_b dz[b, j]
    dx_c[b]   = Σ_j dz[b, j] · W_enc[j]    (an embedding_bag; only where x needs it)
    db_dec    = −Σ_j db_enc[j] · W_enc[j]  (x_c = x − b_dec)

The product runs one block of batch rows at a time into one reused buffer, in `matmul_dtype`
(bf16 where the hardware multiplies it natively); each rule keeps each block's candidates,
so the B × N matrix (256 MB at B=4096, N=16384) never exists whole. Whatever the dtype,
the codes and gradients are those of the exact fp32 pre-activations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from progressive_sae.kernels.product_block import ProductBlock
from progressive_sae.kernels.product_bound import (
    ProductBound,
    exact_pre_activations,
    strict_products,
)
from progressive_sae.kernels.row_accumulate import accumulate_rows
from progressive_sae.kernels.selection import Code, SelectionRule

BLOCK_BYTES = 64 << 20
"""Largest block of pre-activations: 1024 rows at N=16384 in fp32."""
BLOCK_ROWS = 1024
"""Rows per block when BLOCK_BYTES allows: at d=768, N=16384 the GEMM then runs at the
whole matrix's speed (bf16 172 ms for 4096 rows in blocks of 1024, 171 in blocks of 2048;
fp32 657 vs 634), and more rows would only hold more memory."""


def block_rows(batch: int, num_latents: int, itemsize: int, rows: int | None = None) -> int:
    """Rows per block: BLOCK_ROWS within BLOCK_BYTES of pre-activations, or `rows`."""
    wanted = rows or min(BLOCK_ROWS, BLOCK_BYTES // max(1, num_latents * itemsize))
    return max(1, min(batch, wanted))


def select_in_blocks(
    x_c: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, rules: list[SelectionRule],
    matmul_dtype: torch.dtype, rows: int | None = None,
) -> list[Code]:
    """Each rule's exact choice over the batch, from blocks of rows of a fast product."""
    with torch.no_grad():
        x_c, W_enc, b_enc = x_c.detach(), W_enc.detach(), b_enc.detach()
        bound = ProductBound.of(x_c, W_enc, b_enc, matmul_dtype)
        x_m, W_m = bound.augmented(x_c, W_enc, b_enc)
        batch, n = x_c.shape[0], W_enc.shape[0]
        step = block_rows(batch, n, x_m.element_size(), rows)
        buffer = x_m.new_empty(step, n)
        picked: list[list] = [[] for _ in rules]
        with strict_products(x_c.device):
            for start in range(0, batch, step):
                stop = min(batch, start + step)
                block = buffer[: stop - start]
                torch.mm(x_m[start:stop], W_m.t(), out=block)
                part = ProductBlock(x_c, W_enc, b_enc, bound,
                                    torch.arange(start, stop, device=x_c.device), block)
                for r, rule in enumerate(rules):
                    picked[r].append(rule.pick(part))
        del buffer

        def recompute(which: torch.Tensor) -> ProductBlock:
            with strict_products(x_c.device):
                y = torch.mm(x_m[which], W_m.t())
            return ProductBlock(x_c, W_enc, b_enc, bound, which, y)

        return [rule.finish(p, recompute) for rule, p in zip(rules, picked)]


class _SparseEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b_dec, W_enc, b_enc, select, aux_select, matmul_dtype, rows_per_block):
        x_c = x if b_dec is None else x - b_dec
        rules = [select] if aux_select is None else [select, aux_select]
        codes = select_in_blocks(x_c, W_enc, b_enc, rules, matmul_dtype, rows_per_block)
        (values, indices), aux = codes[0], (codes[1] if aux_select is not None else None)
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
        need_x, need_b_dec, need_W, need_b = ctx.needs_input_grad[:4]
        grad_x = grad_b_dec = grad_W = grad_b = None
        if need_W:
            grad_W = accumulate_rows(flat_idx, rows, flat_dz, x_c, W_enc.shape[0])
        if need_b or need_b_dec:
            grad_b = torch.zeros(W_enc.shape[0], dtype=dz.dtype, device=dz.device)
            grad_b.index_add_(0, flat_idx, flat_dz)
        if need_x:
            offsets = torch.arange(0, batch * width, width, device=x_c.device)
            grad_x = F.embedding_bag(
                flat_idx, W_enc, offsets, mode="sum", per_sample_weights=flat_dz
            )
            if need_b_dec:
                grad_b_dec = -grad_x.sum(0)
        elif need_b_dec:
            # Σ_b Σ_j dz[b, j]·W_enc[j] = Σ_j db_enc[j]·W_enc[j]: one vector–matrix product
            # instead of the B × d input gradient (an embedding_bag over every entry) summed.
            grad_b_dec = -(grad_b @ W_enc)
        return (grad_x, grad_b_dec, grad_W, grad_b if need_b else None,
                None, None, None, None)


def sparse_encode(
    x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, select: SelectionRule,
    aux_select: SelectionRule | None = None, matmul_dtype: torch.dtype | None = None,
    rows_per_block: int | None = None, b_dec: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(values, indices, aux_values, aux_indices) of the ReLU'd selected pre-activations.

    The encoder's input is x_c = x − b_dec (`b_dec` optional: x is x_c already). `aux_select`
    (optional) picks a second code from the same pre-activations, e.g. the AuxK latents
    among the dead ones. The fast product runs in `matmul_dtype` (default: x's dtype) over
    blocks of `rows_per_block` rows (default: about BLOCK_BYTES of pre-activations per
    block); the choice is exact.
    """
    dtype = matmul_dtype or x.dtype
    values, indices, aux_values, aux_indices = _SparseEncode.apply(
        x, b_dec, W_enc, b_enc, select, aux_select, dtype, rows_per_block
    )
    if aux_select is None:
        return values, indices, None, None
    return values, indices, aux_values, aux_indices


def sparse_encode_reference(
    x_c: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, select: SelectionRule,
    aux_select: SelectionRule | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Plain PyTorch: each rule on every exact pre-activation, then the selection gathered
    from dense pre-activations with full autograd."""
    pre = x_c @ W_enc.t() + b_enc
    exact = exact_pre_activations(x_c.detach(), W_enc.detach(), b_enc.detach())

    def gather(rule: SelectionRule) -> tuple[torch.Tensor, torch.Tensor]:
        picked, indices = rule(exact)
        # Rules pad with zero-valued entries; those, and entries ≤ 0, stay zero.
        return torch.gather(pre, 1, indices).clamp_min(0) * (picked > 0), indices

    values, indices = gather(select)
    if aux_select is None:
        return values, indices, None, None
    return (values, indices, *gather(aux_select))
