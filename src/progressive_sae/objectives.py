"""Training losses: reconstruction, Matryoshka (fixed or sampled granularities), AuxK.

Every squared error is divided by the batch's total variance Σ||x - mean(x)||², so a loss
reads as an FVU and the default learning rate does not depend on the activations' scale.
Under data parallelism the sums are taken over the *global* batch (via `all_reduce`), so the
summed per-rank gradients equal one process's gradient on the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from progressive_sae.kernels import (
    TopK,
    nested_squared_errors,
    nested_squared_errors_reference,
)
from progressive_sae.kernels.exact_topk import certified_topk_latents
from progressive_sae.kernels.product_block import ProductBlock
from progressive_sae.kernels.product_bound import ProductBound
from progressive_sae.sae.base import SparseAutoencoder, SparseCode

AllReduce = Callable[[torch.Tensor], torch.Tensor]


def _local(t: torch.Tensor) -> torch.Tensor:
    return t


class LossParts(NamedTuple):
    """One training step's loss and what it is made of (all on the global batch)."""

    loss: torch.Tensor
    fvu: torch.Tensor
    """FVU of the full-size reconstruction."""
    aux_loss: torch.Tensor
    code: SparseCode


TOTAL_VARIANCE_ROWS = 1024
"""Rows widened to float64 at a time in `total_variance`."""


def total_variance(x: torch.Tensor, all_reduce: AllReduce = _local) -> torch.Tensor:
    """Σ_b ||x_b - mean(x)||² over the (global) batch, from float64 sums.

    The rows are widened to float64 a block at a time: a float64 copy of the whole batch
    (24 MiB at B=4096, d=768) and its square were the largest temporaries of a step."""
    column_sums = x.new_zeros(x.shape[1], dtype=torch.float64)
    square_sum = x.new_zeros((), dtype=torch.float64)
    for rows in x.detach().split(TOTAL_VARIANCE_ROWS):
        block = rows.double()
        column_sums += block.sum(0)
        flat = block.reshape(-1)
        square_sum += torch.dot(flat, flat)
    sums = torch.cat([column_sums, square_sum.view(1), column_sums.new_tensor([x.shape[0]])])
    sums = all_reduce(sums)
    mean_sum, sq_sum, count = sums[:-2], sums[-2], sums[-1]
    return (sq_sum - mean_sum.dot(mean_sum) / count).clamp_min(1e-12).to(x.dtype)


def dead_latent_rule(dead_idx: torch.Tensor, k_aux: int) -> TopK:
    """AuxK's rule: the k_aux largest pre-activations among the dead latents."""
    return TopK(k_aux, columns=dead_idx)


DENSE_AUX_FACTOR = 6
"""AuxK runs as dense products over the dead latents' columns when there are at most this
many times k_aux of them; above that, as a sparse code of B·k_aux entries that each gather a
d-row of the weights. What AuxK adds to the loss's forward + backward at B=4096, N=16384,
d=768, k_aux=384 on 2 cores (benchmarks/auxk_speed.py), sparse → dense: 368 dead latents
525 → 117 ms, 768: 517 → 261, 1152: 493 → 322, 1536: 484 → 433 (2026-12-02). Exact
selection (2026-12-06) made the sparse path dearer — it re-scores 2·k_aux candidates a row
(2.5·k_aux for a day) — and moved the crossing (2026-12-07): 1536: 1059 → 662 ms, 2048:
860 → 764, 2560: 786 vs 803, 3072: 814 vs 1009. Peak RSS stayed within 35 MB of the
sparse path's at 368 and 768. Where the bf16 bound is loose the crossing lies higher: an SAE
trained 120 steps on SmolLM2-135M's layers.9 (d=576, k_aux=288, lr 5·10⁻³; 2,034 latents
dead by the trainer's count, the least active added), medians of 8 alternating runs, sparse →
dense: 2,034 dead 1367 → 1086 ms, 2,600: 1471 → 1296, 3,200: 1470 → 1395, 3,600: 1499 →
1323; 4,096: 1570 vs 1752 (3 runs; 2026-12-07). With the bound measuring the inputs' rounding
and 2·k_aux candidates a row (later that day): 2,034: 1023 → 823 ms, 2,600: 1015 → 883,
3,200: 1033 → 966. Not moved: it depends on the data. Later still, the dense path's
product gives b_dec its gradient as a vector (`_CentredProduct`): 54–87 ms less at these
sizes, which widens the dense path's lead on real rows but does not close its 195 ms gap at
8·k_aux on the synthetic ones (3,072: 814 against 1009 ms above; 87 ms saved there)."""


class _CentredProduct(torch.autograd.Function):
    """(x - b_dec) @ W.t() + b, whose backward gives b_dec its gradient as one
    vector-matrix product, -(Σ_rows g) @ W, instead of autograd's B × d product g @ W summed
    over rows afterwards (B = 4096, 2 threads: that product took 53 ms over 2,034 dead
    latents at d = 576 and 142 ms over 3,072 at d = 768, the vector 2 and 4 ms; forward +
    backward of this product, alternating with plain autograd's in one process, medians of
    5: 143 against 197 ms, 176 against 254 over 2,304 at d = 768, 233 against 320 over 3,072).
    x's own gradient is formed only when x asks for one."""

    @staticmethod
    def forward(ctx, x, b_dec, W, b):
        x_c = x - b_dec
        ctx.save_for_backward(x_c, W)
        return torch.addmm(b, x_c, W.t())

    @staticmethod
    def backward(ctx, g):
        x_c, W = ctx.saved_tensors
        want_x, want_b_dec, want_W, want_b = ctx.needs_input_grad
        grad_x = g @ W if want_x else None
        grad_b_dec = None
        if want_b_dec:
            grad_b_dec = -grad_x.sum(0) if grad_x is not None else -(g.sum(0) @ W)
        grad_W = g.t() @ x_c if want_W else None
        grad_b = g.sum(0) if want_b else None
        return grad_x, grad_b_dec, grad_W, grad_b


def dead_latents_decode(
    sae: SparseAutoencoder, x: torch.Tensor, dead_idx: torch.Tensor, width: int
) -> torch.Tensor:
    """x̂ (without b_dec) from each row's `width` largest ReLU'd pre-activations of x among
    the latents `dead_idx`, by dense fp32 products over their columns only. Which latents:
    those of the exact pre-activations (decided by `certified_topk_latents` from this
    product); their values: this product's."""
    # Gathered as sparse embeddings: their gradients are sparse and add into the dense
    # gradients of the main loss in place, where a plain index's backward would make an
    # N × d zero tensor per weight and then another N × d sum.
    W_enc = F.embedding(dead_idx, sae.W_enc, sparse=True)
    W_dec = F.embedding(dead_idx, sae.W_dec, sparse=True)
    pre = _CentredProduct.apply(x, sae.b_dec, W_enc, sae.b_enc[dead_idx])
    if width < dead_idx.numel():
        with torch.no_grad():
            x, W, b = (x - sae.b_dec).detach(), sae.W_enc.detach(), sae.b_enc.detach()
            rows = torch.arange(x.shape[0], device=x.device)
            bound = ProductBound.of(x, W, b, torch.float32)
            block = ProductBlock(x, W, b, bound, rows,
                                 bound.plain_upper(pre.detach(), rows, dead_idx), dead_idx)
            chosen = certified_topk_latents(block, width)
            column_of = torch.empty(sae.num_latents, dtype=torch.long, device=x.device)
            column_of[dead_idx] = torch.arange(dead_idx.numel(), device=x.device)
            mask = torch.zeros_like(pre).scatter_(1, column_of[chosen], 1.0)
        pre = pre * mask
    return pre.clamp_min(0) @ W_dec


def sae_loss(
    sae: SparseAutoencoder,
    x: torch.Tensor,
    *,
    granularities: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    dead: torch.Tensor | None = None,
    k_aux: int = 512,
    auxk_alpha: float = 1 / 32,
    all_reduce: AllReduce = _local,
) -> LossParts:
    """Σ_m c_m ||x - x̂_m||² / TV + α · AuxK, with one encode and one sparse decode.

    `granularities` (sorted, last = N) selects the Matryoshka loss; None is plain
    reconstruction. `dead` (bool [N]) enables AuxK over the dead latents.
    """
    x = x.to(sae.W_dec.dtype)
    dead_idx = dead.nonzero().squeeze(1) if dead is not None and auxk_alpha > 0 else None
    if dead_idx is not None and dead_idx.numel() == 0:
        dead_idx = None
    dense_aux = (dead_idx is not None and not sae.use_reference_kernels
                 and dead_idx.numel() <= DENSE_AUX_FACTOR * k_aux)
    aux_select = None
    if dead_idx is not None and not dense_aux:
        aux_select = dead_latent_rule(dead_idx, k_aux)
    code, aux_code = sae.encode_with(x, sae.rule(), aux_select)
    tv = total_variance(x, all_reduce)

    if granularities is None:
        error = x - sae.decode(code)
        fvu = error.pow(2).sum() / tv
        loss = fvu
        residual = error.detach()
    else:
        errors = (
            nested_squared_errors_reference if sae.use_reference_kernels
            else nested_squared_errors
        )
        if weights is None:
            weights = tv.new_full(granularities.shape, 1.0 / granularities.numel())
        loss, sq, residual = errors(code.values, code.indices, sae.W_dec, granularities,
                                    x - sae.b_dec, weights.to(tv.dtype) / tv.detach())
        fvu = sq[-1] / tv

    aux_loss = x.new_zeros(())
    if dead_idx is not None:
        width = min(k_aux, dead_idx.numel())
        residual_hat = (dead_latents_decode(sae, x, dead_idx, width) if dense_aux
                        else sae.decode_latents(aux_code))
        # Fewer dead latents than k_aux: shrink the term as Gao et al.'s reference does.
        scale = width / k_aux
        aux_loss = scale * (residual_hat - residual).pow(2).sum() / total_variance(
            residual, all_reduce
        )
        loss = loss + auxk_alpha * aux_loss
    return LossParts(loss, fvu.detach(), aux_loss.detach(), code)


def sample_granularities(
    num_latents: int, count: int, generator: torch.Generator
) -> torch.Tensor:
    """`count` distinct inner sizes drawn uniformly from 1..N-1, sorted, then N (SPEC §1)."""
    count = min(count, num_latents - 1)
    inner = torch.randperm(num_latents - 1, generator=generator)[:count] + 1
    return torch.cat([inner.sort().values, torch.tensor([num_latents])])
