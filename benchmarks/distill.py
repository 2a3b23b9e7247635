"""Distillation vs truncation vs training from scratch at G ≤ N/4 (issue 12).

    python benchmarks/distill.py [--datasets synthetic lm] [--full-tokens 393216]
                                 [--tune-fraction 0.1] [--threads 1]

For each dataset an N=2048, k=32 TopK is trained with the full budget, then at each G in
{128, 256, 512} (k_G = round(k·G/N)) the script measures the held-out FVU (and, for the
LM, CE_clean/CE_spliced) of: (a) `truncated` — permuted by E[z²] and truncated; (b)
`distilled` — progressive_sae.distill without fine-tune; (c) `distilled_tuned` — the same
plus a fine-tune of T = tune_fraction × full tokens; (d) `truncated_tuned` — (a) plus the
same fine-tune; (e) `scratch_same_budget` — a G-latent TopK trained from scratch on T
tokens; (f) `scratch_full` — one trained on the full budget. Also closed-form variants of
the distillation (families, encoder fit, decoder refit) under `variants`.

Datasets: `synthetic` — a hierarchy with known features (SyntheticActivations: 512
features, 64 parents × 4 children, d=128; mean max cosine to the true features is
recorded); `lm` — the demo's activations (the shipped offline LM, block 2, CPython's docs;
the cache is extracted into benchmarks/.data/distill/ unless already there). Writes
benchmarks/results/distill.json and distill.png. Timings are wall-clock seconds on a
machine shared with other jobs: noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from progressive_sae.atomic import write_json_atomic
from progressive_sae.data.source import RowRange
from progressive_sae.data.synthetic import SyntheticActivations, SyntheticConfig
from progressive_sae.distill import DistillConfig, distill, fine_tune
from progressive_sae.metrics import (
    evaluate_reconstruction,
    mean_max_cosine_similarity,
    recaptured_loss,
    splice_baseline,
)
from progressive_sae.progressive import make_progressive
from progressive_sae.sae import load_sae, save_sae
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.train import train

HERE = Path(__file__).resolve().parent
WORK = HERE / ".data" / "distill"
N, K, GRANULARITIES = 2048, 32, (128, 256, 512)
SAMPLE_ROWS = 16384
LM_TRAIN_ROWS = 400_000
"""Rows of the LM cache (the full budget must fit: training reads each row at most once)."""
TUNE_BATCH = 1024
FULL_BATCH = 4096
HOOK = "layers.2"
VARIANTS = {
    "kmeans_mean_refit3_mincos0.5": DistillConfig(),
    "kmeans_mean_refit3_all": DistillConfig(min_cosine=-1.0),
    "kmeans_mean_norefit": DistillConfig(refit_rounds=0),
    "kmeans_mean_refit1": DistillConfig(refit_rounds=1),
    "kmeans_lstsq_refit3": DistillConfig(encoder_fit="lstsq"),
    "seeds_only_refit3": DistillConfig(min_cosine=1.01),
    "agglomerative_mean_refit3": DistillConfig(families="agglomerative"),
}
"""Closed-form distillations tried (no fine-tune); the first is the method's default."""


class Dataset:
    """Training rows, held-out rows and (LM only) what the recaptured loss needs."""

    def __init__(self, name: str, train_data: Any, heldout: Any, truth: torch.Tensor | None,
                 lm: Any = None, input_ids: torch.Tensor | None = None) -> None:
        self.name, self.train, self.heldout, self.truth = name, train_data, heldout, truth
        self.lm, self.input_ids = lm, input_ids
        self.baseline = (splice_baseline(lm, input_ids, HOOK) if lm is not None else None)


def synthetic_dataset() -> Dataset:
    cfg = SyntheticConfig(d_in=128, num_features=512, mean_active=16.0, num_parents=64,
                          children_per_parent=4, child_none_prob=0.2, zipf_exponent=1.0,
                          seed=0, num_rows=2_000_000)
    source = SyntheticActivations(cfg)
    return Dataset("synthetic", source, RowRange(source, 1_900_000, 1_916_384),
                   source.features)


def lm_dataset() -> Dataset:
    from progressive_sae.data.cache import CachedActivations
    from progressive_sae.lm import load_lm
    from progressive_sae.lm.extract import extract
    from progressive_sae.lm.model import OFFLINE_DEFAULT
    from progressive_sae.lm.text import TextConfig, take_windows

    lm = load_lm(OFFLINE_DEFAULT, device="cpu")
    text = {"source": "cpython-docs", "ctx": 256}
    train_text = TextConfig.from_dict({**text, "part": "train"}, where="text")
    heldout_text = TextConfig.from_dict({**text, "part": "heldout"}, where="text")
    extract(lm, heldout_text, HOOK, WORK / "heldout", 23000, dtype="float16", progress=False)
    extract(lm, train_text, HOOK, WORK / "train", LM_TRAIN_ROWS, dtype="float16",
            progress=False)
    windows = torch.as_tensor(take_windows(heldout_text, lm.tokenizer, 8), dtype=torch.long)
    return Dataset("lm", CachedActivations(WORK / "train", shuffle_buffer=65536),
                   CachedActivations(WORK / "heldout", shuffle_buffer=0), None, lm, windows)


def score(data: Dataset, sae: SparseAutoencoder) -> dict[str, float]:
    out = {"fvu": evaluate_reconstruction(sae, data.heldout).fvu}
    if data.truth is not None:
        out["mmcs"] = mean_max_cosine_similarity(sae.W_dec, data.truth)
    if data.lm is not None:
        out["ce_ratio"] = recaptured_loss(data.lm, sae, data.input_ids, HOOK,
                                          baseline=data.baseline).ratio
    return out


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started


def run_dataset(data: Dataset, full_tokens: int, tune_tokens: int) -> dict[str, Any]:
    folder = WORK / f"{data.name}_large_{full_tokens}"
    if (folder / "cfg.json").is_file():  # reused: its training time was recorded with it
        large = load_sae(folder)
        large_s = float(large.cfg.metadata.get("benchmark_seconds", float("nan")))
    else:
        print(f"[{data.name}] training N={N} on {full_tokens} tokens", flush=True)
        (large, _), large_s = timed(train, data.train, num_latents=N, k=K,
                                    batch_size=FULL_BATCH, total_tokens=full_tokens,
                                    progress=False, log_every=1000)
        large.cfg.metadata["benchmark_seconds"] = large_s
        save_sae(large, folder, overwrite=True)
    progressive, rank_s = timed(make_progressive, large, data.train, max_rows=SAMPLE_ROWS)
    out: dict[str, Any] = {"large": {**score(data, large), "tokens": full_tokens,
                                     "seconds": large_s}}
    for g in GRANULARITIES:
        out[str(g)] = measure(data, large, progressive.truncate(g), rank_s, g, full_tokens,
                              tune_tokens)
    return out


def measure(data: Dataset, large: SparseAutoencoder, truncated: SparseAutoencoder,
            rank_s: float, g: int, full_tokens: int, tune_tokens: int) -> dict[str, Any]:
    """Every method at one granularity G."""
    k_g = large.relative_k(g)
    rows: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    tokens: dict[str, int] = {}
    scores: dict[str, dict[str, float]] = {}

    def keep(name: str, sae: SparseAutoencoder, secs: float, toks: int) -> None:
        scores[name], seconds[name], tokens[name] = score(data, sae), secs, toks
        rows[name] = scores[name]["fvu"]
        print(f"[{data.name}] G={g} {name}: {scores[name]} ({secs:.1f} s)", flush=True)

    keep("truncated", truncated, rank_s, 0)
    variants: dict[str, Any] = {}
    distilled = None
    for name, cfg in VARIANTS.items():
        (sae, report), secs = timed(distill, large, data.train, g, cfg)
        variants[name] = {**score(data, sae), "seconds": secs,
                          "family_sizes": report.family_sizes}
        print(f"[{data.name}] G={g} variant {name}: {variants[name]}", flush=True)
        if distilled is None:
            distilled, distill_s = sae, secs
    keep("distilled", distilled, distill_s, 0)
    (tuned, _), secs = timed(fine_tune, distilled, data.train, tune_tokens, TUNE_BATCH)
    keep("distilled_tuned", tuned, distill_s + secs, tune_tokens)
    (tuned, _), secs = timed(fine_tune, truncated, data.train, tune_tokens, TUNE_BATCH)
    keep("truncated_tuned", tuned, rank_s + secs, tune_tokens)
    (sae, _), secs = timed(train, data.train, num_latents=g, k=k_g, batch_size=TUNE_BATCH,
                           total_tokens=tune_tokens, progress=False, log_every=1000)
    keep("scratch_same_budget", sae, secs, tune_tokens)
    (sae, _), secs = timed(train, data.train, num_latents=g, k=k_g, batch_size=FULL_BATCH,
                           total_tokens=full_tokens, progress=False, log_every=1000)
    keep("scratch_full", sae, secs, full_tokens)
    return {**rows, "tune_tokens": tune_tokens, "full_tokens": full_tokens,
            "k": k_g, "tokens": tokens, "seconds": seconds, "scores": scores,
            "variants": variants}


def criteria(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's 'done when' at each G ≤ N/4, per dataset."""
    out: dict[str, Any] = {}
    for dataset, by_g in results.items():
        for g in GRANULARITIES:
            r = by_g[str(g)]
            out[f"{dataset}/{g}"] = {
                "distilled_lt_truncated": r["distilled"] < r["truncated"],
                "tuned_lt_truncated_tuned": r["distilled_tuned"] < r["truncated_tuned"],
                "tuned_lt_scratch_same_budget":
                    r["distilled_tuned"] < r["scratch_same_budget"],
                "tune_fraction": r["tune_tokens"] / r["full_tokens"],
            }
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = ("truncated", "distilled", "truncated_tuned", "distilled_tuned",
               "scratch_same_budget", "scratch_full")
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (dataset, by_g) in zip(axes[0], results.items()):
        for method in methods:
            ax.plot(GRANULARITIES, [by_g[str(g)][method] for g in GRANULARITIES], marker="o",
                    label=method)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("G (latents of the small SAE)")
        ax.set_ylabel("held-out FVU")
        ax.set_title(f"{dataset}: N={N}, k={K}, k_G = round(k·G/N)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["synthetic", "lm"],
                        choices=["synthetic", "lm"])
    parser.add_argument("--full-tokens", type=int, default=393216)
    parser.add_argument("--tune-fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results" / "distill.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_tokens = int(args.full_tokens * args.tune_fraction) // TUNE_BATCH * TUNE_BATCH
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for name in args.datasets:
        data = synthetic_dataset() if name == "synthetic" else lm_dataset()
        results[name] = run_dataset(data, args.full_tokens, tune_tokens)
    out = Path(args.out)
    meta = {"num_latents": N, "k": K, "granularities": list(GRANULARITIES),
            "sample_rows": SAMPLE_ROWS, "tune_batch_size": TUNE_BATCH,
            "full_batch_size": FULL_BATCH, "threads": args.threads,
            "platform": platform.platform(), "seconds": time.perf_counter() - started,
            "variants": {k: v.to_dict() for k, v in VARIANTS.items()},
            "criteria": criteria(results),
            "note": "wall-clock seconds on a 2-core machine shared with other jobs: noisy"}
    write_json_atomic(out, {**results, "meta": meta})
    plot(results, out.with_suffix(".png"))
    print(json.dumps(meta["criteria"], indent=1))


if __name__ == "__main__":
    main()
