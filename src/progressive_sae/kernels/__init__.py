"""Fast paths, each beside a plain dense reference that the tests compare it against.

* `sparse_decode` / `sparse_decode_reference`: x̂ = zᵀ W_dec from a sparse code.
* `prefix_decode` / `prefix_decode_reference`: every Matryoshka reconstruction from one
  sparse decode with running sums over the groups; `nested_squared_errors` streams their
  squared errors and their weighted sum (the Matryoshka loss) without materialising the
  B × |M| × d reconstructions.
* `sparse_encode` / `sparse_encode_reference`: a fast dense product over blocks of rows
  (the B × N matrix never exists whole), an activation rule of `selection` that decides
  exactly on the fp32 pre-activations (`product_bound`'s bound; `exact_topk` finds each
  row's largest exact values), and a backward pass that touches only the selected latents
  of each input.
"""

from progressive_sae.kernels.encoder_backward import sparse_encode, sparse_encode_reference
from progressive_sae.kernels.precision import fast_matmul_dtype
from progressive_sae.kernels.prefix_decode import (
    nested_squared_errors,
    nested_squared_errors_reference,
    prefix_decode,
    prefix_decode_reference,
)
from progressive_sae.kernels.product_bound import exact_pre_activations
from progressive_sae.kernels.selection import BatchTopK, SelectionRule, Threshold, TopK
from progressive_sae.kernels.sparse_decode import sparse_decode, sparse_decode_reference

__all__ = [
    "BatchTopK",
    "SelectionRule",
    "Threshold",
    "TopK",
    "exact_pre_activations",
    "fast_matmul_dtype",
    "nested_squared_errors",
    "nested_squared_errors_reference",
    "prefix_decode",
    "prefix_decode_reference",
    "sparse_decode",
    "sparse_decode_reference",
    "sparse_encode",
    "sparse_encode_reference",
]
