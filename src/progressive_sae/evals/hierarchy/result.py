"""Result records of the hierarchy evaluation: per edge, per (SAE, granularity view), overall."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from progressive_sae.evals.common import Estimate, GranularityView


def finite(value: float | None) -> float | None:
    """JSON-safe number: None for undefined (NaN, ±inf, missing)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def estimate_dict(estimate: Estimate | None) -> dict[str, Any] | None:
    if estimate is None:
        return None
    return {k: finite(v) if isinstance(v, float) else v for k, v in estimate.to_dict().items()}


@dataclass(frozen=True)
class EdgeScore:
    """How the latent matched to a parent behaves on one parent → child edge."""

    parent: int
    """Ground-truth parent feature."""
    child: int
    """Ground-truth child feature."""
    parent_latent: int | None
    """Latent matched to the parent (None: unmatched at this granularity)."""
    child_latent: int | None
    """Latent matched to the child (None: unmatched)."""
    fire_without_child: float | None
    """P(parent latent fires | parent ∧ ¬child)."""
    fire_with_child: float | None
    """P(parent latent fires | parent ∧ child)."""
    gap: float | None
    """Absorption gap: fire_without_child − fire_with_child (0 = none, 1 = full)."""
    full_absorption_rate: float | None
    """P(parent latent silent | parent ∧ child)."""
    encoder_cos: float | None
    """Cosine of the parent latent's encoder row with the child's direction (negative =
    absorption, positive = hedging)."""
    child_decoder_parent_cos: float | None
    """Cosine of the child latent's decoder row with the parent's direction (high = the child
    latent carries its parent: absorption seen from the child)."""
    rows_with_child: int
    """Evaluated rows where parent and child fire."""
    rows_without_child: int
    """Evaluated rows where the parent fires without this child."""

    def to_dict(self) -> dict[str, Any]:
        return {k: finite(v) if isinstance(v, float) else v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class ViewHierarchy:
    """Hierarchy scores of one SAE at one granularity view."""

    sae: str
    """Name of the SAE."""
    view: GranularityView
    """Which latents were scored."""
    matched_features: int
    """Ground-truth features matched to a latent (min(G, features))."""
    matched_mean_abs_cos: float
    """Mean |decoder cosine| over the matched (feature, latent) pairs."""
    mean_gap: Estimate | None
    """Mean absorption gap over the edges with a defined gap, bootstrap over EDGES."""
    mean_full_absorption: Estimate | None
    """Mean full-absorption rate over those edges, bootstrap over edges."""
    mean_encoder_cos: float | None
    """Mean encoder cosine of parent latents with their children's directions."""
    absorbing_edges: int
    """Edges whose parent latent's encoder cosine with the child is < 0 (absorption)."""
    hedging_edges: int
    """Edges whose parent latent's encoder cosine with the child is > 0 (hedging)."""
    edges: tuple[EdgeScore, ...]
    """Every parent → child edge."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "sae": self.sae, "view": self.view.to_dict(), "label": self.view.label,
            "matched_features": self.matched_features,
            "matched_mean_abs_cos": finite(self.matched_mean_abs_cos),
            "mean_gap": estimate_dict(self.mean_gap),
            "mean_full_absorption": estimate_dict(self.mean_full_absorption),
            "mean_encoder_cos": finite(self.mean_encoder_cos),
            "absorbing_edges": self.absorbing_edges, "hedging_edges": self.hedging_edges,
            "edges": [e.to_dict() for e in self.edges],
        }


@dataclass(frozen=True)
class HierarchyResult:
    """Ground-truth absorption of every SAE at every view (SPEC §4.7)."""

    views: tuple[ViewHierarchy, ...]
    """One entry per (SAE, view), SAEs in the order given."""
    rows: tuple[int, int]
    """[start, stop) of the evaluated source rows."""
    num_edges: int
    """Parent → child edges of the hierarchy."""
    config: dict[str, Any]
    """The HierarchyConfig used."""
    seconds: float
    """Wall time of the evaluation."""

    def for_sae(self, name: str) -> list[ViewHierarchy]:
        return [v for v in self.views if v.sae == name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "evaluation": "hierarchy_absorption",
            "bootstrap_unit": "edge",
            "rows": list(self.rows), "num_edges": self.num_edges, "config": self.config,
            "seconds": finite(self.seconds), "views": [v.to_dict() for v in self.views],
        }
