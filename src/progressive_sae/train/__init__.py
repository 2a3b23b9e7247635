"""Training: the loop, its schedule, dead-latent tracking, checkpoints and data parallelism."""

from progressive_sae.train.config import TrainConfig
from progressive_sae.train.trainer import Trainer, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "Trainer", "train"]
