"""Inputs on which a plain bf16 choice of latents goes wrong, and how the tests compare codes."""

import torch

from progressive_sae.kernels.product_block import ProductBlock
from progressive_sae.kernels.product_bound import ProductBound

B, D, N, K = 64, 48, 192, 6
DTYPES = [torch.float32, torch.bfloat16]


def hard_inputs(seed: int, kind: str):
    """Inputs on which a bf16 product picks other latents than the exact values do."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g)
    W = torch.randn(N, D, generator=g) / D**0.5
    b = torch.randn(N, generator=g) * 0.05
    if kind == "near-ties":  # latents in pairs 1e-4 apart: below bf16's resolution
        W[1::2] = W[0::2] * (1 + 1e-4)
        b[1::2] = b[0::2]
    elif kind == "duplicates":  # exact ties: the lower latent wins
        W[1::2], b[1::2] = W[0::2], b[0::2]
    elif kind == "huge-dims":  # a few dimensions ~1000x the rest, as in LM residual streams
        x[:, :3] *= 1000.0
        x[:, 3:] += torch.randn(B, D - 3, generator=g)
    elif kind == "zero-latents":  # an all-zero half: exact zeros, never active
        W[N // 2:], b[N // 2:] = 0.0, 0.0
    elif kind == "mostly-negative":  # rows with fewer positive values than candidates
        b -= 2.5
    elif kind == "coherent-rounding":
        # Every input 3/8 of a bf16 step above a grid point (rounded down by 0.75u), and
        # every product positive: the inputs' rounding errors add up along the whole dot
        # product, the case where the measured bound (Cauchy–Schwarz) is tight.
        sign = torch.randint(0, 2, (D,), generator=g) * 2.0 - 1.0
        step = 1 + 3 * 2.0**-10
        x = sign * step * 2.0 ** torch.randint(-1, 2, (B, D), generator=g)
        W = sign * step * 2.0 ** torch.randint(-6, -2, (N, D), generator=g)
    return x, W, b


KINDS = ["random", "near-ties", "duplicates", "huge-dims", "zero-latents", "mostly-negative",
         "coherent-rounding"]


def dense(code, n: int = N) -> torch.Tensor:
    values, latents = code
    return torch.zeros(values.shape[0], n).scatter_add(1, latents, values.clamp_min(0))


def positive_entries_equal(code, reference, *context) -> None:
    """The active entries of each row, in order (zeros are padding), are the reference's."""
    for row in range(reference[0].shape[0]):
        got, want = code[0][row] > 0, reference[0][row] > 0
        assert torch.equal(code[0][row][got], reference[0][row][want]), (*context, row)
        assert torch.equal(code[1][row][got], reference[1][row][want]), (*context, row)


def wide_inputs(seed: int, kind: str, n: int = 4096, rows: int = B):
    """Hard inputs with enough latents to scan by threshold (16 · scan < n), and a loose bf16
    bound on every row: a norm in dimensions no latent reads, as LM outlier dimensions do."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, D, generator=g)
    W = torch.randn(n, D, generator=g) / D**0.5
    b = torch.randn(n, generator=g) * 0.05
    if kind == "duplicates":
        W[1::2], b[1::2] = W[0::2], b[0::2]
    elif kind == "mostly-negative":
        b -= 2.5
    if kind != "loud-dims":  # else the loud dimensions are read: large bf16 rounding errors
        W[:, :2] = 0.0
    x[:, :2] = 320.0
    return x, W, b


def fp32_block(x, W, b, columns=None):
    """A block of every row from a plain fp32 product (as AuxK's dense path makes one)."""
    bound = ProductBound.of(x, W, b, torch.float32)
    rows = torch.arange(x.shape[0])
    Wc, bc = (W, b) if columns is None else (W[columns], b[columns])
    return ProductBlock(x, W, b, bound, rows, bound.plain_upper(x @ Wc.t() + bc, rows, columns),
                        columns)
