"""The exact pre-activations, and a fast product whose values bound them from above.

Exact value. The pre-activation of input row b and latent j is, on every path and device,
`exact[b, j] = dot(x_c[b], W[j]) + b[j]` computed in fp32 one entry at a time (`entry_dots`:
the same arithmetic for an entry whichever batch, block or candidate set it is computed in).
The code's values are these numbers, and the activation rules decide on them.

Fast product. The dense product only proposes candidates. It runs in bf16 where the
hardware multiplies bf16 natively (inputs rounded with unit u = 2⁻⁸, products accumulated
in fp32, the output rounded once to bf16), or in fp32. With S = Σ_i |x_bi·W_ji| ≤
‖x_b‖₂‖W_j‖₂ (Cauchy–Schwarz) and γ = (d+3)·2⁻²⁴ / (1 - (d+3)·2⁻²⁴), the standard
rounding-error analysis bounds every error of the product and of the exact value by terms
in S, |b_j| and |y|. The inputs' own rounding is bounded by what it measures: with
x̃_b = x_b + a_b and W̃_j = W_j + e_j the rounded inputs, x̃·W̃ − x·W = a_b·W_j + x̃_b·e_j, at
most ‖a_b‖‖W_j‖ + ‖x̃_b‖‖e_j‖ (each about 0.42u‖x_b‖‖W_j‖: measured on SmolLM2-135M's
activations, synthetic rows and Gaussian weights alike; u‖x_b‖‖W_j‖ at worst). So the
product is *augmented* with columns that add those terms, and with the bias, so that the
product is rounded once, after the bias:

    y[b, j] = [x̃_b, s_b, s'_b, 1] · [W̃_j, t_j, t'_j, b_j + c_j]     in the product's dtype,
    s_b·t_j   ≥ K₀·‖a_b‖₂‖W_j‖₂ + K₁·‖x_b‖₂‖W_j‖₂ + η·√d·‖x_b‖₂     (s, t rounded up to
    s'_b·t'_j ≥ K₀·(1+u)‖x_b‖₂·‖e_j‖₂                                the dtype; b + c to
                                                                       nearest: K₂ allows it)
    c_j       = K₂·|b_j| + η·(√d·‖W_j‖₂ + d)
    K₀ = 1 / (1 - γ),   K₁ = (2⁻²⁴ + γ(1 + (1+u)²)) / (1 - γ)
    K₂ = (u + γ(2+u) + 2⁻²⁴) / (1 - u - γ(1+u))
    η  = 2⁻¹²⁰  (underflow and flushed subnormals: at most 2⁻¹²⁶ per input, product and
                 sum, over ‖x_b‖₁ + ‖W_j‖₁ + d, with ‖v‖₁ ≤ √d‖v‖₂)

and then, for every entry,   exact[b, j] ≤ y[b, j] + r·|y[b, j]|,   r = u_out / (1 - u_out).

Where the kernel rounds the inputs itself (fp32 products in reduced precision) nothing is
measured: ‖a_b‖ ≤ u‖x_b‖ and ‖e_j‖ ≤ u‖W_j‖, one pair of columns with K₁ + K₀(2u + u²).
A plain product x Wᵀ + b made elsewhere (`plain_upper`) gets its terms added afterwards,
with K₁ at the worst case and room for one more rounding of the product before the bias
is added (some kernels do that): `k1`. An all-zero latent gets t_j = t'_j = c_j = 0: its y
and exact value are 0.
Everything is inflated by SAFETY against the rounding of the bound's own fp32 arithmetic.
`upper(y) = y + r|y|` grows with y, so the entries *not* among a row's largest y values
can reach at most upper(the smallest candidate's y): that is what settles a choice.

Units: bf16 inputs u = 2⁻⁸; an fp32 product u = 0, unless PyTorch may run fp32 products in
reduced precision (`torch.get_float32_matmul_precision() != "highest"`, or TF32 allowed on
CUDA), when it is bounded as a bf16 one. On CUDA the product runs with cuBLAS's reduced-
precision split-K reduction off (`strict_products`), so fp32 accumulation holds there too.
The suite checks that the kernel sums in fp32 and rounds once, on sums that cancel
(`test_the_fast_product_accumulates_in_fp32_and_rounds_once`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import torch

from progressive_sae.kernels.sparse_decode import entry_dots_in_latent_order

U32 = 2.0**-24
"""Unit roundoff of fp32."""
TINY = 2.0**-120
"""η: absolute allowance for underflow."""
SAFETY = 1.01
"""Inflation that covers the rounding of the bound's own fp32 arithmetic."""
BF16 = 2.0**-8
"""Unit roundoff of bf16."""
SUPPORTED = (torch.bfloat16, torch.float32)


def exact_values(
    x_c: torch.Tensor, W: torch.Tensor, b: torch.Tensor, rows: torch.Tensor,
    indices: torch.Tensor,
) -> torch.Tensor:
    """exact[rows[i], indices[i, c]] for every entry of `indices` [r, K] (rows: [r])."""
    count, width = indices.shape
    if indices.numel() == 0:
        return x_c.new_zeros(count, width)
    return exact_entries(x_c, W, b, rows.repeat_interleave(width), indices.reshape(-1)).view(
        count, width)


def exact_entries(
    x_c: torch.Tensor, W: torch.Tensor, b: torch.Tensor, rows: torch.Tensor,
    latents: torch.Tensor,
) -> torch.Tensor:
    """exact[rows[e], latents[e]] for each entry e (both 1-D, of one length)."""
    if latents.numel() == 0:
        return x_c.new_zeros(0)
    return entry_dots_in_latent_order(x_c, W, latents, rows) + b[latents]


def exact_pre_activations(x_c: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Every exact pre-activation [B, N], entry by entry: the reference that rules decide on."""
    batch, n = x_c.shape[0], W.shape[0]
    columns = torch.arange(n, device=x_c.device)
    out = x_c.new_empty(batch, n)
    step = max(1, (1 << 20) // max(n, 1))
    for start in range(0, batch, step):
        rows = torch.arange(start, min(batch, start + step), device=x_c.device)
        out[start:start + rows.numel()] = exact_values(
            x_c, W, b, rows, columns.expand(rows.numel(), n))
    return out


@contextlib.contextmanager
def strict_products(device: torch.device) -> Iterator[None]:
    """cuBLAS reduces split-K partial sums in fp32 inside this block (the bound assumes it)."""
    if device.type != "cuda":
        yield
        return
    flags = torch.backends.cuda.matmul
    saved = flags.allow_bf16_reduced_precision_reduction
    flags.allow_bf16_reduced_precision_reduction = False
    try:
        yield
    finally:
        flags.allow_bf16_reduced_precision_reduction = saved


def product_units(dtype: torch.dtype, device: torch.device) -> tuple[float, float]:
    """(u_in, u_out): the rounding units of a product's inputs and output in `dtype`."""
    if dtype not in SUPPORTED:
        raise ValueError(f"selection product dtype {dtype}: expected one of {SUPPORTED}")
    if dtype == torch.bfloat16:
        return BF16, BF16
    reduced = torch.get_float32_matmul_precision() != "highest" or (
        device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32)
    return (BF16 if reduced else 0.0), U32


class Norms(NamedTuple):
    """What the bound is made of, computed once per batch."""

    rows: torch.Tensor
    """‖x_b‖₂ [B]."""
    latents: torch.Tensor
    """‖W_j‖₂ [N]."""
    bias: torch.Tensor
    """|b_j| [N]."""
    nonzero: torch.Tensor
    """1.0 where a latent has a non-zero weight or bias [N]."""

    @staticmethod
    def of(x_c: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> Norms:
        with torch.no_grad():
            latents = torch.linalg.vector_norm(W.detach().float(), dim=1)
            bias = b.detach().float().abs()
            return Norms(torch.linalg.vector_norm(x_c.detach().float(), dim=1), latents, bias,
                         ((latents > 0) | (bias > 0)).float())


class ProductBound:
    """The augmentation terms and r of a product in one dtype (module docstring)."""

    def __init__(self, norms: Norms, d: int, dtype: torch.dtype, device: torch.device) -> None:
        self.norms, self.d, self.dtype = norms, d, dtype
        u, u_out = product_units(dtype, device)
        self.u = u
        """Unit roundoff of the product's inputs (0 for an fp32 product)."""
        self.exact_grade = u == 0.0
        """True for a product that rounds no input (fp32): its bound is tiny."""
        gamma = (d + 3) * U32 / (1 - (d + 3) * U32)
        self.k0 = SAFETY / (1 - gamma)
        """K₀: the factor of the inputs' rounding terms in the augmented product."""
        self.k_sum = self.k0 * (U32 + gamma * (1 + (1 + u) ** 2))
        """K₁: the augmented product's factor of ‖x_b‖‖W_j‖ besides the inputs' rounding."""
        self.k1 = SAFETY * (2 * u + u**2 + U32 + u_out * (1 + u) ** 2
                            + gamma * (1 + (1 + u) ** 2)) / (1 - gamma - u_out)
        """A plain product's factor of ‖x_b‖‖W_j‖ (`plain_upper`): the inputs' rounding at
        its worst, and one more rounding of the product before the bias is added."""
        self.k2 = SAFETY * (u + gamma * (2 + u) + U32) / (1 - u - gamma * (1 + u))
        # An fp32 product augmented after the fact (`plain_upper`) rounds twice more.
        self.relative = SAFETY * u_out / (1 - u_out) + (3 * U32 if self.exact_grade else 0.0)
        """r: the part of the bound proportional to |y|."""

    @classmethod
    def of(
        cls, x_c: torch.Tensor, W: torch.Tensor, b: torch.Tensor, dtype: torch.dtype
    ) -> ProductBound:
        return cls(Norms.of(x_c, W, b), x_c.shape[1], dtype, x_c.device)

    def as_fp32(self, device: torch.device) -> ProductBound:
        """The bound of an fp32 product over the same batch and weights."""
        return ProductBound(self.norms, self.d, torch.float32, device)

    def row_terms(self) -> torch.Tensor:
        """A plain product's s_b: k1·‖x_b‖."""
        return self.norms.rows * self.k1

    def latent_terms(self, row_factor: float | None = None) -> torch.Tensor:
        """t_j for s_b ≥ row_factor·‖x_b‖ (default k1): ‖W_j‖ plus the underflow term."""
        n = self.norms
        factor = self.k1 if row_factor is None else row_factor
        return n.latents + (SAFETY * TINY * self.d**0.5 / factor) * n.nonzero

    def latent_const(self) -> torch.Tensor:
        """c_j."""
        n = self.norms
        return (self.k2 * n.bias + SAFETY * TINY * (self.d**0.5 * n.latents + self.d)) * n.nonzero

    def augmented(
        self, x_c: torch.Tensor, W: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_aug, W_aug) in the product's dtype, whose plain product x_aug W_augᵀ is y: x̃
        and W̃, the bound's columns (s, s' against t, t' where this dtype rounds the inputs,
        their rounding measured; else one pair at the worst case), then ones against the
        biases b_j + c_j, so that the product rounds once, after the bias."""
        d = self.d
        measured = self.dtype != torch.float32  # we round the inputs: a bf16 copy
        width = d + augmented_columns(self.dtype)
        x_m = x_c.new_empty(x_c.shape[0], width, dtype=self.dtype)
        W_m = W.new_empty(W.shape[0], width, dtype=self.dtype)
        x_m[:, :d].copy_(x_c)
        W_m[:, :d].copy_(W)
        if measured:
            rows = self.k_sum * self.norms.rows + self.k0 * rounding_norms(
                x_c, x_m[:, :d], self.u * self.norms.rows)
            _round_up_into(x_m[:, d + 1], self.k0 * (1 + self.u) * self.norms.rows)
            _round_up_into(W_m[:, d + 1], rounding_norms(W, W_m[:, :d],
                                                         self.u * self.norms.latents))
            factor = self.k_sum
        else:
            factor = self.k_sum + self.k0 * (2 * self.u + self.u**2)
            rows = factor * self.norms.rows
        _round_up_into(x_m[:, d], rows)
        _round_up_into(W_m[:, d], self.latent_terms(factor))
        x_m[:, -1] = 1.0
        W_m[:, -1].copy_(b + self.latent_const())
        return x_m, W_m

    def plain_upper(
        self, product: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor | None
    ) -> torch.Tensor:
        """y from a plain fp32 product x_c Wᵀ + b of these rows and latents (its terms added
        in fp32 afterwards; `relative` allows for those two roundings)."""
        if columns is None:
            columns = torch.arange(product.shape[1], device=product.device)
        return self.spread(rows.unsqueeze(1), columns).add_(product)

    def spread(self, rows: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """E = s_b·t_j + c_j at batch rows `rows` and latents `latents` (broadcast against
        each other): |exact − p| ≤ E for a plain fp32 product p."""
        return self.row_terms()[rows] * self.latent_terms()[latents] + self.latent_const()[latents]

    def upper(self, y: torch.Tensor) -> torch.Tensor:
        """The largest exact value an entry with augmented product value `y` can have."""
        y = y.float()
        return y + self.relative * y.abs()


def augmented_columns(dtype: torch.dtype) -> int:
    """Columns `ProductBound.augmented` adds to x and W: the bound's (two where the product's
    dtype rounds the inputs, which are then measured; one in fp32) and the bias's."""
    return 2 if dtype == torch.float32 else 3


def _round_up_into(column: torch.Tensor, values: torch.Tensor) -> None:
    """column ← values in column's dtype, never below: scaled by 1 + 2u (bf16's u, the
    coarsest supported) before rounding to nearest."""
    column.copy_(values * (1 + 2 * BF16))


ROUNDING_CHUNK = 2048
"""Rows whose rounding residual is measured at a time (an fp32 temporary of this many rows)."""
UNDERFLOW_NORM = 2.0**-50
"""A measured residual norm below this may have lost squares to underflow (fp32 squares
underflow below 2⁻¹²⁶): such rows take the worst case instead."""


def rounding_norms(
    m: torch.Tensor, rounded: torch.Tensor, worst: torch.Tensor
) -> torch.Tensor:
    """‖m_i − rounded_i‖₂ of each row i (`rounded`: m in a narrower dtype), at most
    `worst` [rows] (u‖m_i‖). The residual is exact in fp32 (it has at most 16 significant
    bits); its norm is computed in fp32 (its rounding is within SAFETY), and rows small
    enough for squares to underflow take `worst`."""
    out = torch.empty(m.shape[0], dtype=torch.float32, device=m.device)
    residual = m.new_empty(min(m.shape[0], ROUNDING_CHUNK), m.shape[1], dtype=torch.float32)
    for start in range(0, m.shape[0], ROUNDING_CHUNK):
        stop = min(m.shape[0], start + ROUNDING_CHUNK)
        part = torch.sub(m[start:stop], rounded[start:stop], out=residual[: stop - start])
        torch.linalg.vector_norm(part, dim=1, out=out[start:stop])
    small = out < UNDERFLOW_NORM
    return torch.where(small, worst, out) if bool(small.any()) else out
