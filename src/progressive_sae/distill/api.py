"""`distill`: from one trained SAE of N latents, a real G-latent SAE (issue 12).

Families of split latents are found (families.py), merged in closed form (merge.py), the
result is reordered most-important first, and optionally fine-tuned briefly (tune.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from progressive_sae.data.source import as_source
from progressive_sae.distill.config import DistillConfig
from progressive_sae.distill.families import (
    agglomerative_families,
    kmeans_families,
    read_sample,
)
from progressive_sae.distill.merge import merge_families
from progressive_sae.distill.tune import fine_tune
from progressive_sae.errors import PSAEError
from progressive_sae.progressive import latent_statistics, ranking
from progressive_sae.sae.base import SparseAutoencoder

METADATA_KEY = "distilled"
"""Metadata key under which a distilled SAE records how it was made."""


@dataclass
class DistillReport:
    """What a distillation did and what it cost."""

    source_latents: int
    source_k: int
    granularity: int
    k: int
    families: str
    sample_rows: int
    family_sizes: dict[str, int]
    """min, median and max members per family."""
    sample_fvu: float
    """FVU on the sample rows right after merging (before any fine-tune)."""
    tune_tokens: int
    merge_seconds: float
    tune_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(sae: SparseAutoencoder, data: object, granularity: int) -> None:
    n = sae.num_latents
    if isinstance(granularity, bool) or not isinstance(granularity, int) \
            or not 2 <= granularity < n:
        raise PSAEError(f"granularity={granularity!r}: expected an integer with "
                        f"2 ≤ G < num_latents={n}")
    source = as_source(data)
    d_in = getattr(source, "d_in", None)
    if d_in is not None and d_in != sae.d_in:
        raise PSAEError(f"activations of width d_in={d_in}: expected the SAE's "
                        f"d_in={sae.d_in}")


def _fvu(sae: SparseAutoencoder, x: torch.Tensor) -> float:
    with torch.no_grad():
        err = (sae(x) - x).double().pow(2).sum()
        var = (x.double() - x.double().mean(0)).pow(2).sum()
    return float(err / var)


def distill(
    sae: SparseAutoencoder, data: object, granularity: int, cfg: DistillConfig | None = None,
    progress: bool = False,
) -> tuple[SparseAutoencoder, DistillReport]:
    """A G-latent TopK SAE with k_G = round(k·G/N) (< G) distilled from `sae` on `data`
    (tensor, .npy path, activation cache or source), and the report of how.

    Everything the method chose — its settings, each family's members (indices into the
    source SAE) and their weights E[z], the fine-tune tokens — is in
    `cfg.metadata["distilled"]` of the result (JSON-able).
    """
    cfg = cfg or DistillConfig()
    _check(sae, data, granularity)
    started = time.perf_counter()
    sample = read_sample(sae, data, cfg.sample_rows, cfg.batch_size)
    if sample.x.shape[0] < 2:
        raise PSAEError(f"{sample.x.shape[0]} activation rows: expected at least 2 to distil on")
    if cfg.families == "kmeans":
        families = kmeans_families(sae.W_dec, sample, granularity, cfg.kmeans_iters,
                                   cfg.seed_max_cosine, cfg.min_cosine)
    else:
        families = agglomerative_families(sae.W_dec, sample, granularity, cfg.decoder_weight)
    k = min(sae.relative_k(granularity), granularity - 1)
    small = merge_families(sae, sample, families, k, cfg)
    stats = latent_statistics(small, sample.x, batch_size=cfg.batch_size)
    order = ranking(stats, "mean_sq")
    small = small.permute(order)
    sample_fvu = _fvu(small, sample.x)
    merge_seconds = time.perf_counter() - started
    members = families.members()
    weights = sample.mean.tolist()
    record: dict[str, Any] = {
        "config": cfg.to_dict(), "source_num_latents": sae.num_latents,
        "source_k": sae.cfg.k, "sample_rows": int(sample.x.shape[0]),
        "sample_fvu": sample_fvu, "permuted_by": "mean_sq",
        "families": [members[int(f)] for f in order],
        "member_weights": [[round(weights[i], 6) for i in members[int(f)]] for f in order],
        "weights_are": "E[z_i] of each member on the sample rows",
        "dropped": families.dropped(),
        "tune_tokens": 0,
    }
    small.cfg.metadata = {**{k_: v for k_, v in sae.cfg.metadata.items()
                             if k_ not in ("fvu_by_granularity", METADATA_KEY)},
                          METADATA_KEY: record}
    tune_seconds = 0.0
    if cfg.tune_tokens:
        small, result = fine_tune(small, data, cfg.tune_tokens, cfg.tune_batch_size,
                                  cfg.tune_lr, cfg.seed, progress)
        record["tune_tokens"] = result.tokens
        small.cfg.metadata[METADATA_KEY] = record
        tune_seconds = result.seconds
    sizes = sorted(len(m) for m in members)
    report = DistillReport(
        source_latents=sae.num_latents, source_k=sae.cfg.k, granularity=granularity, k=k,
        families=cfg.families, sample_rows=int(sample.x.shape[0]),
        family_sizes={"min": sizes[0], "median": sizes[len(sizes) // 2], "max": sizes[-1]},
        sample_fvu=sample_fvu, tune_tokens=record["tune_tokens"],
        merge_seconds=merge_seconds, tune_seconds=tune_seconds,
    )
    return small, report
