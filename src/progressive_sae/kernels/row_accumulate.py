"""Scatter-add of weighted vectors into the rows of a large matrix (a sparse gradient)."""

from __future__ import annotations

import warnings

import torch

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def accumulate_rows(
    rows: torch.Tensor, sources: torch.Tensor, coeffs: torch.Tensor, vectors: torch.Tensor,
    num_rows: int, out: torch.Tensor | None = None,
) -> torch.Tensor:
    """out[r] = Σ_e coeffs[e] · vectors[sources[e]] over the entries e with rows[e] == r.

    Written as a CSR (num_rows × len(vectors)) @ vectors product: on CPU this is ~2x faster
    than `index_add_` of materialised products and never allocates an entries × d buffer.
    Each output row is summed by one thread in a fixed order, so the result is deterministic.
    The product is written into its output (`addmm(..., beta=0, out=)`): a plain `matrix @
    vectors` allocates a second num_rows × d result inside and copies it over (measured at
    N=16384, d=768: 48 MiB more at the peak and 54 → 30 ms). `out` (uninitialised, [num_rows,
    d], contiguous) receives the result when given.
    """
    rows = rows.reshape(-1)
    # Sorting int32 keys takes half as long as int64 (131k entries: 2.8 vs 5.2 ms); the
    # stable order is the same.
    keys = rows.to(torch.int32) if num_rows <= torch.iinfo(torch.int32).max else rows
    order = torch.argsort(keys, stable=True)
    counts = torch.bincount(rows, minlength=num_rows)
    crow = torch.zeros(num_rows + 1, dtype=torch.int64, device=rows.device)
    torch.cumsum(counts, 0, out=crow[1:])
    matrix = torch.sparse_csr_tensor(
        crow, sources.reshape(-1)[order], coeffs.reshape(-1)[order].to(vectors.dtype),
        size=(num_rows, vectors.shape[0]), check_invariants=False,
    )
    if out is None:
        out = vectors.new_empty(num_rows, vectors.shape[1])
    return torch.addmm(out, matrix, vectors, beta=0, out=out)
