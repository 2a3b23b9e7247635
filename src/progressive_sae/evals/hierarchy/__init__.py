"""Absorption against a ground-truth hierarchy of synthetic features (SPEC §4.7)."""

from progressive_sae.evals.hierarchy.config import HierarchyConfig
from progressive_sae.evals.hierarchy.evaluate import evaluate_hierarchy, match_latents
from progressive_sae.evals.hierarchy.plot import plot_hierarchy
from progressive_sae.evals.hierarchy.result import EdgeScore, HierarchyResult, ViewHierarchy

__all__ = ["EdgeScore", "HierarchyConfig", "HierarchyResult", "ViewHierarchy",
           "evaluate_hierarchy", "match_latents", "plot_hierarchy"]
