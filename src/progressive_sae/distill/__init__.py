"""Distillation: a large SAE's split latents merged back into a smaller SAE (issue 12)."""

from progressive_sae.distill.api import METADATA_KEY, DistillReport, distill
from progressive_sae.distill.config import DistillConfig
from progressive_sae.distill.tune import fine_tune

__all__ = ["METADATA_KEY", "DistillConfig", "DistillReport", "distill", "fine_tune"]
