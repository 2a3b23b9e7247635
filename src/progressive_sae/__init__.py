"""progressive-sae: train, convert and evaluate progressive sparse autoencoders."""

from progressive_sae.errors import PSAEError
from progressive_sae.evaluation import EvalSet, Fidelity, evaluate_fidelity
from progressive_sae.formats import export_sae, import_sae
from progressive_sae.metrics import evaluate_reconstruction, mean_max_cosine_similarity
from progressive_sae.progressive import latent_statistics, make_progressive, rank_latents
from progressive_sae.sae import (
    BatchTopKSAE,
    JumpReLUSAE,
    SAEConfig,
    SparseAutoencoder,
    SparseCode,
    TopKSAE,
    build_sae,
    load_sae,
    save_sae,
)
from progressive_sae.train import TrainConfig, Trainer, TrainResult, train

__all__ = [
    "EvalSet",
    "Fidelity",
    "evaluate_fidelity",
    "export_sae",
    "import_sae",
    "BatchTopKSAE",
    "JumpReLUSAE",
    "PSAEError",
    "SAEConfig",
    "SparseAutoencoder",
    "SparseCode",
    "TopKSAE",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_sae",
    "evaluate_reconstruction",
    "latent_statistics",
    "load_sae",
    "make_progressive",
    "mean_max_cosine_similarity",
    "rank_latents",
    "save_sae",
    "train",
]
