"""Which latents are scored and on which windows: the paper's protocol (SPEC §4.6).

Dead latents are removed; the live latents of a granularity bucket ([G_i, G_{i+1})) are
grouped into frequency quantiles and up to `latents_per_quantile` drawn from each. Per
latent, its reservoir (a uniform sample of ALL its activating windows) is sorted by max
activation and cut into `example_quantiles` rank-quantiles; test and train windows are
dealt from them in turn (test first), so both span every quantile and never share a window.
Non-activating windows come from the records' uniform pool. Every draw uses a generator
seeded by (seed, latent): results do not depend on the order of work, and the global RNG
is never touched. A latent without enough windows is returned as `Skipped` with the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from progressive_sae.errors import PSAEError
from progressive_sae.interp.config import SamplingConfig
from progressive_sae.interp.records import LatentRecords, Window


@dataclass(frozen=True)
class Bucket:
    """Latents lo ≤ j < hi: one granularity band of the dictionary."""

    lo: int
    """First latent."""
    hi: int
    """One past the last latent."""

    @property
    def label(self) -> str:
        return f"[{self.lo}, {self.hi})"


@dataclass(frozen=True)
class LatentExamples:
    """A latent and the windows it is explained and scored on."""

    latent: int
    """Index in the SAE."""
    bucket: Bucket
    """Its granularity bucket."""
    quantile: int
    """Its frequency quantile in the bucket (0 = rarest)."""
    frequency: float
    """Fraction of tokens it fires on."""
    max_act: float
    """Its largest activation over the whole stream (activations are scaled 0–10 by it)."""
    train: tuple[Window, ...]
    """Activating windows shown to the explainer."""
    test: tuple[Window, ...]
    """Activating windows scored (disjoint from train)."""
    nonactivating: tuple[Window, ...]
    """Windows where the latent is 0 on every token (as many as test)."""


@dataclass(frozen=True)
class Skipped:
    """A latent drawn for scoring that could not be: the reason is reported, not hidden."""

    latent: int
    """Index in the SAE."""
    bucket: str
    """Its bucket's label."""
    quantile: int
    """Its frequency quantile."""
    reason: str
    """Why (e.g. too few activating windows)."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def buckets(boundaries: list[int] | None, num_latents: int) -> list[Bucket]:
    """Bands [0, G_1), [G_1, G_2), …, [G_last, N) of the boundaries below N."""
    inner = sorted({int(g) for g in boundaries or [] if 0 < int(g) < num_latents})
    edges = [0, *inner, num_latents]
    return [Bucket(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]


def select_latents(records: LatentRecords, bucket: Bucket, cfg: SamplingConfig,
                   seed: int = 0) -> list[tuple[int, int]]:
    """(latent, frequency quantile) drawn from the bucket's live latents, sorted by latent."""
    if bucket.hi > records.num_latents:
        raise PSAEError(f"bucket {bucket.label} exceeds the {records.num_latents} latents "
                        "recorded")
    live = records.live()
    live = live[(live >= bucket.lo) & (live < bucket.hi)]
    if live.size == 0:
        return []
    freq = records.frequency[live]
    by_freq = live[np.lexsort((live, freq))]
    rng = np.random.default_rng([seed, bucket.lo, bucket.hi])
    chosen: list[tuple[int, int]] = []
    scorable = set(scorable_latents(records, cfg).tolist()) if cfg.scorable_only else None
    for q, group in enumerate(np.array_split(by_freq, min(cfg.quantiles, live.size))):
        if scorable is not None:
            group = np.array([j for j in group if j in scorable], dtype=np.int64)
        take = min(cfg.latents_per_quantile, group.size)
        chosen += [(int(j), q) for j in rng.choice(group, size=take, replace=False)]
    return sorted(chosen)


def scorable_latents(records: LatentRecords, cfg: SamplingConfig) -> np.ndarray:
    """Latents with enough activating windows kept and enough non-activating pool windows."""
    kept = (records.tensors["res_wid"] >= 0).sum(1).numpy()
    pool = records.tensors["pool_wid"].numpy() >= 0
    quiet = (~records.tensors["pool_active"].numpy() & pool[:, None]).sum(0)
    return np.flatnonzero((kept >= cfg.train_examples + cfg.test_examples)
                          & (quiet >= cfg.test_examples))


def draw_examples(records: LatentRecords, latent: int, quantile: int, bucket: Bucket,
                  cfg: SamplingConfig, seed: int = 0) -> LatentExamples | Skipped:
    """Train, test and non-activating windows of one latent (or why it cannot be scored)."""
    need = cfg.train_examples + cfg.test_examples
    pool = records.windows(latent, "res")
    fired = _activating_windows_note(records, latent)
    if len(pool) < need:
        return Skipped(latent, bucket.label, quantile,
                       f"{len(pool)} activating windows{fired}: need {need} "
                       f"({cfg.train_examples} train + {cfg.test_examples} test)")
    quiet = records.nonactivating(latent)
    if len(quiet) < cfg.test_examples:
        return Skipped(latent, bucket.label, quantile,
                       f"{len(quiet)} non-activating windows in the records' pool: need "
                       f"{cfg.test_examples}")
    rng = np.random.default_rng([seed, latent])
    ranked = sorted(pool, key=lambda w: (w.max_act, w.wid))
    strata = [list(s) for s in np.array_split(np.arange(len(ranked)),
                                              min(cfg.example_quantiles, len(ranked)))]
    for s in strata:
        rng.shuffle(s)
    dealt = [s[i] for i in range(max(map(len, strata))) for s in strata if i < len(s)]
    test = [ranked[i] for i in dealt[:cfg.test_examples]]
    train = [ranked[i] for i in dealt[cfg.test_examples:need]]
    picks = rng.choice(len(quiet), size=cfg.test_examples, replace=False)
    return LatentExamples(
        latent=latent, bucket=bucket, quantile=quantile,
        frequency=float(records.frequency[latent]),
        max_act=float(records.max_activation[latent]),
        train=tuple(sorted(train, key=lambda w: -w.max_act)), test=tuple(test),
        nonactivating=tuple(quiet[int(i)] for i in sorted(picks)))


def _activating_windows_note(records: LatentRecords, latent: int) -> str:
    kept = int((records.tensors["res_wid"][latent] >= 0).sum())
    size = records.tensors["res_wid"].shape[1]
    return "" if kept < size else f" kept (the reservoir holds {size})"


def sample(records: LatentRecords, bucket: Bucket, cfg: SamplingConfig, seed: int = 0
           ) -> tuple[list[LatentExamples], list[Skipped]]:
    """The bucket's scored latents with their examples, and those skipped with why."""
    if records.tensors["res_wid"].shape[1] < cfg.train_examples + cfg.test_examples:
        raise PSAEError(
            f"records.reservoir={records.tensors['res_wid'].shape[1]}: expected at least "
            f"train_examples + test_examples = {cfg.train_examples + cfg.test_examples}")
    examples: list[LatentExamples] = []
    skipped: list[Skipped] = []
    for latent, q in select_latents(records, bucket, cfg, seed):
        drawn = draw_examples(records, latent, q, bucket, cfg, seed)
        (examples if isinstance(drawn, LatentExamples) else skipped).append(drawn)
    return examples, skipped
