"""Absorption against a known hierarchy (SPEC §4.7): latents matched to true features by
Hungarian matching of decoder cosines, then per parent → child edge the absorption gap
P(parent latent fires | parent ∧ ¬child) − P(parent latent fires | parent ∧ child), the
full-absorption rate, and the parent latent's encoder cosine with the child's direction."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from progressive_sae.errors import PSAEError
from progressive_sae.evals.common import (
    GranularityView,
    bootstrap_mean,
    encode_dense,
    granularity_views,
)
from progressive_sae.evals.hierarchy.config import HierarchyConfig
from progressive_sae.evals.hierarchy.result import EdgeScore, HierarchyResult, ViewHierarchy
from progressive_sae.sae.base import GRANULARITY_MODES, SparseAutoencoder


def match_latents(decoder: torch.Tensor, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching maximising decoder cosine: for each true feature, its latent (-1
    when there are fewer latents than features and it got none) and the matched cosine."""
    cos = (F.normalize(decoder.detach().float(), dim=1)
           @ F.normalize(features.float(), dim=1).t()).cpu().numpy()
    rows, cols = linear_sum_assignment(cos, maximize=True)
    latent_of = np.full(features.shape[0], -1, dtype=np.int64)
    matched_cos = np.full(features.shape[0], np.nan)
    latent_of[cols] = rows
    matched_cos[cols] = cos[rows, cols]
    return latent_of, matched_cos


def _rate(fires: torch.Tensor, rows: torch.Tensor) -> float | None:
    count = int(rows.sum())
    return float(fires[rows].float().mean()) if count else None


def edge_score(
    parent: int, child: int, truth: torch.Tensor, latent_fires: torch.Tensor,
    latent_of: np.ndarray, encoder: torch.Tensor, decoder: torch.Tensor,
    features: torch.Tensor,
) -> EdgeScore:
    """Scores of one edge; `truth` [rows, features] and `latent_fires` [rows, G] are bool."""
    with_child = truth[:, parent] & truth[:, child]
    without_child = truth[:, parent] & ~truth[:, child]
    p_lat, c_lat = int(latent_of[parent]), int(latent_of[child])
    fire_with = fire_without = gap = full = enc_cos = child_cos = None
    if p_lat >= 0:
        fires = latent_fires[:, p_lat]
        fire_with, fire_without = _rate(fires, with_child), _rate(fires, without_child)
        if fire_with is not None:
            full = 1.0 - fire_with
            if fire_without is not None:
                gap = fire_without - fire_with
        enc_cos = float(F.cosine_similarity(encoder[p_lat], features[child], dim=0))
    if c_lat >= 0:
        child_cos = float(F.cosine_similarity(decoder[c_lat], features[parent], dim=0))
    return EdgeScore(
        parent, child, p_lat if p_lat >= 0 else None, c_lat if c_lat >= 0 else None,
        fire_without, fire_with, gap, full, enc_cos, child_cos,
        int(with_child.sum()), int(without_child.sum()),
    )


def evaluate_view(
    name: str, sae: SparseAutoencoder, view: GranularityView, x: torch.Tensor,
    truth: torch.Tensor, features: torch.Tensor, edges: Sequence[tuple[int, int]],
    config: HierarchyConfig,
) -> ViewHierarchy:
    """Hierarchy scores of one SAE restricted to one view's latents."""
    g = view.granularity
    decoder = sae.W_dec.detach()[:g].float().cpu()
    encoder = sae.W_enc.detach()[:g].float().cpu()
    latent_of, matched_cos = match_latents(decoder, features)
    fires = encode_dense(sae, x, view) > config.fire_threshold
    scores = tuple(edge_score(p, c, truth, fires, latent_of, encoder, decoder, features)
                   for p, c in edges)
    gaps = [s.gap for s in scores if s.gap is not None]
    fulls = [s.full_absorption_rate for s in scores if s.gap is not None]
    cosines = [s.encoder_cos for s in scores if s.encoder_cos is not None]
    seed = config.seed
    return ViewHierarchy(
        sae=name, view=view,
        matched_features=int((latent_of >= 0).sum()),
        matched_mean_abs_cos=float(np.nanmean(np.abs(matched_cos))),
        mean_gap=bootstrap_mean(gaps, config.resamples, seed=seed) if gaps else None,
        mean_full_absorption=(bootstrap_mean(fulls, config.resamples, seed=seed)
                              if fulls else None),
        mean_encoder_cos=float(np.mean(cosines)) if cosines else None,
        absorbing_edges=sum(c < 0 for c in cosines),
        hedging_edges=sum(c > 0 for c in cosines),
        edges=scores,
    )


def evaluate_hierarchy(
    saes: Mapping[str, SparseAutoencoder], source: object,
    granularities: Iterable[int] | None = None, modes: Sequence[str] = GRANULARITY_MODES,
    config: HierarchyConfig | None = None,
) -> HierarchyResult:
    """Ground-truth absorption of each SAE, full size and at each G in each mode.

    `source` is a synthetic source with a hierarchy: it has `features` [F, d], `edges()`
    and `fired(start, stop)` (e.g. `SyntheticActivations` with num_parents > 0).
    """
    config = config or HierarchyConfig()
    start_time = time.perf_counter()
    for needed in ("features", "edges", "fired", "rows"):
        if not hasattr(source, needed):
            raise PSAEError(f"hierarchy evaluation needs a synthetic source with ground truth "
                            f"(it lacks {needed!r}); got {type(source).__name__}")
    edges = list(source.edges())  # type: ignore[attr-defined]
    if not edges:
        raise PSAEError("the synthetic source has no hierarchy (num_parents=0): expected "
                        "parents with children, e.g. SyntheticConfig.toy_tree()")
    if not saes:
        raise PSAEError("no SAE given: expected at least one SAE")
    features = source.features.detach().float().cpu()  # type: ignore[attr-defined]
    for name, sae in saes.items():
        if sae.d_in != features.shape[1]:
            raise PSAEError(f"SAE {name!r} reads d_in={sae.d_in}: the synthetic activations "
                            f"have width {features.shape[1]}")
    start, stop = config.row_range(len(source))  # type: ignore[arg-type]
    x = source.rows(start, stop)  # type: ignore[attr-defined]
    truth = source.fired(start, stop)  # type: ignore[attr-defined]
    views = []
    for name, sae in saes.items():
        for view in granularity_views(sae, [g for g in (granularities or [])
                                            if g < sae.num_latents], modes):
            views.append(evaluate_view(name, sae, view, x, truth, features, edges, config))
    return HierarchyResult(tuple(views), (start, stop), len(edges), config.to_dict(),
                           time.perf_counter() - start_time)
