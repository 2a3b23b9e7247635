"""The models: parameters, activation rules, encode/decode, permutation and truncation."""

from progressive_sae.sae.base import SparseAutoencoder, SparseCode
from progressive_sae.sae.batchtopk import BatchTopKSAE
from progressive_sae.sae.config import SAEConfig
from progressive_sae.sae.io import build_sae, load_sae, save_sae
from progressive_sae.sae.jumprelu import JumpReLUSAE
from progressive_sae.sae.topk import TopKSAE

__all__ = [
    "BatchTopKSAE",
    "JumpReLUSAE",
    "SAEConfig",
    "SparseAutoencoder",
    "SparseCode",
    "TopKSAE",
    "build_sae",
    "load_sae",
    "save_sae",
]
