"""Absorption of labelled concepts by SAE latents, for any activations with class labels.

SAEBench's definitions (Chanin et al., "A is for Absorption"), one-vs-rest per class:

1. a residual probe per class, fit on the train split, scored (F1) and gated on the test
   split; 2. the class's *main latents*: latents ranked by their train mean-activation
   difference between the class and the rest, k grown from 1 while a k-sparse logistic
   probe's F1 on the validation split rises by more than `f1_jump`; 3. on the test rows that
   the residual probe calls positive (its true positives), per row: the probe projection p of
   (x − b_dec); each latent's share z_j·cos(W_dec[j], probe); the *absorption fraction* —
   other latents with cosine ≥ the absorber threshold and positive share (top
   `max_absorbers`) carrying ≥ `projection_share`·p, counted up to what the main latents
   miss; and *full absorption* — main latents silent while the top-projecting latent (cosine
   ≥ the full-absorption threshold) carries ≥ `projection_share`·p.

Differences from SAEBench, on purpose: latents are ranked by mean difference instead of an
L1-probe's weights, k is chosen on a validation split (never the test split), the probe
projection is of x − b_dec (what the latents reconstruct) instead of raw x, and below
SAEBench's width (2304) the cosine thresholds are scaled to the same chance level
(`AbsorptionConfig.cosine_thresholds`) — at d = 256 SAEBench's 0.1 lets an untrained SAE
score as much absorption as a trained one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from progressive_sae.errors import PSAEError
from progressive_sae.evals.absorption.config import AbsorptionConfig
from progressive_sae.evals.absorption.probes import (
    ResidualProbes,
    f1_scores,
    fit_residual_probes,
    fit_sparse_probes,
)
from progressive_sae.evals.absorption.result import (
    AbsorptionResult,
    ClassAbsorption,
    ClassProbe,
    ViewAbsorption,
)
from progressive_sae.evals.common import (
    Estimate,
    GranularityView,
    encode_dense,
    granularity_views,
)
from progressive_sae.sae.base import GRANULARITY_MODES, SparseAutoencoder

EPS = 1e-8


def split_rows(n: int, config: AbsorptionConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint train, validation and test row indices (a seeded permutation)."""
    perm = np.random.default_rng(config.seed).permutation(n)
    n_test = int(round(n * config.test_fraction))
    n_val = int(round((n - n_test) * config.val_fraction))
    return perm[n_test + n_val:], perm[n_test:n_test + n_val], perm[:n_test]


def row_absorption(
    code: torch.Tensor, projection: torch.Tensor, cos: torch.Tensor, main: Sequence[int],
    config: AbsorptionConfig, d_in: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Absorption fraction [m] and full absorption (bool [m]) of rows with codes [m, G],
    probe projections [m] and latent–probe decoder cosines [G]; cosine thresholds from
    `config.cosine_thresholds(d_in)` (SAEBench's own values when d_in is None)."""
    absorber_cos, full_cos = config.cosine_thresholds(d_in)
    share = code * cos[None, :]
    is_main = torch.zeros(code.shape[1], dtype=torch.bool)
    is_main[list(main)] = True
    main_share = share[:, is_main].sum(1)
    candidates = (~is_main & (cos >= absorber_cos))[None, :] & (share > 0)
    absorbing = torch.where(candidates, share, torch.zeros_like(share))
    top = absorbing.topk(min(config.max_absorbers, share.shape[1]), dim=1).values.sum(1)
    safe = torch.where(projection.abs() > EPS, projection, torch.full_like(projection, EPS))
    enough = top / safe >= config.projection_share
    absorbed = torch.minimum(top, projection - main_share)
    partial = (absorbed / (absorbed + main_share).clamp_min(EPS)).clamp(0, 1)
    fraction = torch.where(main_share <= 0, torch.ones_like(partial), partial)
    fraction = torch.where((main_share >= projection) | ~enough, torch.zeros_like(partial),
                           fraction)
    best = share.max(1)
    full = (
        (code[:, is_main].abs() < EPS).all(1) & (cos[best.indices] >= full_cos)
        & (projection >= 0) & (best.values / safe >= config.projection_share)
    )
    return fraction, full


def main_latents(
    codes: torch.Tensor, labels: torch.Tensor, train: np.ndarray, val: np.ndarray,
    classes: Sequence[int], config: AbsorptionConfig,
) -> list[tuple[list[int], float]]:
    """For each class: its main latents and their k-sparse probe's validation F1."""
    tr_codes, tr_labels = codes[train], labels[train]
    onehot = (tr_labels[None, :] == torch.tensor(classes)[:, None]).float()  # [C, n]
    pos = onehot @ tr_codes / onehot.sum(1, keepdim=True).clamp_min(1)
    neg = (1 - onehot) @ tr_codes / (1 - onehot).sum(1, keepdim=True).clamp_min(1)
    top = min(config.max_k, codes.shape[1])
    ranked = (pos - neg).topk(top, dim=1).indices  # positive direction only, as SAEBench
    local = torch.full_like(tr_labels, -1)
    for i, c in enumerate(classes):
        local[tr_labels == c] = i
    truth = np.stack([(labels[val] == c).numpy() for c in classes])
    best = np.full(len(classes), -np.inf)
    k_best = np.ones(len(classes), dtype=np.int64)
    growing = np.ones(len(classes), dtype=bool)
    for k in range(1, top + 1):  # a class stops at the first k that does not help enough
        probes = fit_sparse_probes(tr_codes, local, ranked[:, :k])
        f1 = f1_scores(probes.predict(codes[val]).numpy(), truth)
        better = growing & (f1 > best + config.f1_jump)
        best[better], k_best[better] = f1[better], k
        growing &= better
        if not growing.any():
            break
    return [(ranked[i, :k_best[i]].tolist(), float(best[i])) for i in range(len(classes))]


def class_mean_estimate(values: np.ndarray, owner: np.ndarray, num_classes: int,
                        resamples: int, seed: int, level: float = 0.95) -> Estimate:
    """Mean over classes of each class's mean of `values` (rows owned by classes `owner`),
    with the percentile bootstrap of `common.bootstrap` over rows, vectorised over resamples
    (a resample missing a class averages the classes it has)."""
    def means(idx: np.ndarray) -> np.ndarray:  # idx [R, n] → [R]
        r = np.arange(idx.shape[0])[:, None] * num_classes
        bins = (r + owner[idx]).ravel()
        size = idx.shape[0] * num_classes
        counts = np.bincount(bins, minlength=size).reshape(-1, num_classes)
        sums = np.bincount(bins, weights=values[idx].ravel(), minlength=size).reshape(
            -1, num_classes)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nanmean(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), 1)
    n = values.size
    value = float(means(np.arange(n)[None])[0])
    draws = means(np.random.default_rng(seed).integers(0, n, (resamples, n)))
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(value, float(low), float(high), n)


def evaluate_view(
    name: str, sae: SparseAutoencoder, view: GranularityView, x: torch.Tensor,
    labels: torch.Tensor, splits: tuple[np.ndarray, np.ndarray, np.ndarray],
    probes: ResidualProbes, positives: dict[int, np.ndarray], class_names: Sequence[str],
    config: AbsorptionConfig,
) -> ViewAbsorption:
    """Absorption of the scored classes (keys of `positives`: test true-positive rows)."""
    train, val, _ = splits
    scored = sorted(positives)
    codes = encode_dense(sae, x, view)
    decoder = F.normalize(sae.W_dec.detach()[:view.granularity].float().cpu(), dim=1)
    directions = torch.from_numpy(probes.directions()).float()
    centred = x.float() - sae.b_dec.detach().float().cpu()
    found = main_latents(codes, labels, train, val, scored, config) if scored else []
    per_class, values, fulls, owners = [], [], [], []
    for i, (c, (main, f1)) in enumerate(zip(scored, found)):
        rows = torch.from_numpy(positives[c])
        frac = full = None
        if rows.numel():
            fraction, is_full = row_absorption(codes[rows], centred[rows] @ directions[c],
                                               decoder @ directions[c], main, config,
                                               x.shape[1])
            frac, full = float(fraction.mean()), float(is_full.float().mean())
            values.append(fraction.numpy())
            fulls.append(is_full.float().numpy())
            owners.append(np.full(rows.numel(), i))
        per_class.append(ClassAbsorption(class_names[c], tuple(main), f1, int(rows.numel()),
                                          frac, full))
    mean_frac = mean_full = None
    if owners:
        owner = np.concatenate(owners)
        mean_frac = class_mean_estimate(np.concatenate(values), owner, len(scored),
                                        config.resamples, config.seed)
        mean_full = class_mean_estimate(np.concatenate(fulls), owner, len(scored),
                                        config.resamples, config.seed)
    mean_main = float(np.mean([len(c.main_latents) for c in per_class])) if per_class else None
    return ViewAbsorption(name, view, mean_frac, mean_full, mean_main, tuple(per_class))


def check_labelled(x: torch.Tensor, labels: Sequence[Any]) -> tuple[torch.Tensor, list[str]]:
    """Integer labels and sorted class names; PSAEError for an empty or single-class set."""
    if len(labels) == 0 or x.shape[0] == 0:
        raise PSAEError("empty label set: expected activations with at least two classes")
    if x.ndim != 2 or x.shape[0] != len(labels):
        raise PSAEError(f"activations of shape {tuple(x.shape)} with {len(labels)} labels: "
                        "expected [rows, d] and one label per row")
    names = sorted({str(v) for v in labels})
    if len(names) < 2:
        raise PSAEError(f"label set with the single class {names[0]!r}: expected at least two "
                        "classes")
    index = {n: i for i, n in enumerate(names)}
    return torch.tensor([index[str(v)] for v in labels]), names


def evaluate_absorption(
    saes: Mapping[str, SparseAutoencoder], activations: torch.Tensor | np.ndarray,
    labels: Sequence[Any], granularities: Iterable[int] | None = None,
    modes: Sequence[str] = GRANULARITY_MODES, config: AbsorptionConfig | None = None,
    task: str = "labels", details: dict[str, Any] | None = None,
) -> AbsorptionResult:
    """Absorption of each class (one-vs-rest) by each SAE, full size and per granularity view.

    `activations` [rows, d] are what the SAEs read; `labels` one class per row (any hashable;
    compared as text).
    """
    config = config or AbsorptionConfig()
    start = time.perf_counter()
    x = torch.as_tensor(activations).float()
    y, names = check_labelled(x, labels)
    if not saes:
        raise PSAEError("no SAE given: expected at least one SAE")
    for name, sae in saes.items():
        if sae.d_in != x.shape[1]:
            raise PSAEError(f"SAE {name!r} reads d_in={sae.d_in}: the activations have width "
                            f"{x.shape[1]}")
    splits = split_rows(x.shape[0], config)
    train, val, test = splits
    xn = x.numpy().astype(np.float64)
    counts = [tuple(int((y[s] == c).sum()) for s in splits) for c in range(len(names))]
    enough = [c for c in range(len(names)) if min(counts[c]) >= config.min_class_rows]
    probes = fit_residual_probes(xn[train], y[train].numpy(), len(names), enough,
                                 config.probe_c)
    test_scores = probes.scores(xn[test])
    class_probes, positives = [], {}
    for c, name in enumerate(names):
        rows = counts[c]
        if c not in enough:
            class_probes.append(ClassProbe(name, rows, None, "too_few"))
            continue
        truth, said = y[test].numpy() == c, test_scores[:, c] > 0
        f1 = float(f1_scores(said[None], truth[None])[0])
        status = "scored" if f1 >= config.gate_f1 else "gated"
        class_probes.append(ClassProbe(name, rows, f1, status))
        if status == "scored":
            positives[c] = test[truth & said]
    views = []
    for name, sae in saes.items():
        gs = [g for g in (granularities or []) if g < sae.num_latents]
        for view in granularity_views(sae, gs, modes):
            views.append(evaluate_view(name, sae, view, x, y, splits, probes, positives, names,
                                       config))
    absorber_cos, full_cos = config.cosine_thresholds(x.shape[1])
    details = dict(details or {}) | {"absorber_cos_used": absorber_cos,
                                     "full_absorption_cos_used": full_cos}
    return AbsorptionResult(task, tuple(class_probes), tuple(views),
                            (len(train), len(val), len(test)), config.to_dict(),
                            time.perf_counter() - start, details)
