"""The offline demo: train TopK and Matryoshka SAEs on synthetic activations with known
features, make the TopK SAE progressive, and compare fidelity across granularities.

Finished runs are reused and interrupted ones resume, so running it again is cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from progressive_sae.atomic import write_json_atomic
from progressive_sae.data.source import TensorSource
from progressive_sae.data.synthetic import SyntheticActivations, SyntheticConfig
from progressive_sae.metrics import evaluate_reconstruction, mean_max_cosine_similarity
from progressive_sae.progressive import make_progressive
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.io import load_sae
from progressive_sae.train.checkpoint import latest_checkpoint
from progressive_sae.train.config import TrainConfig
from progressive_sae.train.trainer import FINAL_SAE, Trainer


@dataclass
class DemoConfig:
    """Size of the demo grid (defaults finish in a few minutes on 2 CPU cores)."""

    d_in: int = 256
    """Activation width."""
    num_features: int = 2048
    """Ground-truth features in the synthetic data."""
    mean_active: float = 24.0
    """Features firing per row on average."""
    num_latents: int = 2048
    """SAE dictionary size N."""
    k: int = 24
    """Active latents per input."""
    batch_size: int = 2048
    """Tokens per step."""
    steps: int = 200
    """Training steps per SAE."""
    eval_rows: int = 16384
    """Held-out rows for evaluation and ranking."""


def _train_or_reuse(name: str, cfg: TrainConfig, data, out: Path) -> SparseAutoencoder:
    run = out / name
    if (run / FINAL_SAE).is_dir():
        print(f"[{name}] reusing {run / FINAL_SAE}")
        return load_sae(run / FINAL_SAE)
    resume = run.is_dir() and latest_checkpoint(run) is not None
    print(f"[{name}] {'resuming' if resume else 'training'} in {run}")
    trainer = Trainer(cfg, data, run_dir=run, resume=resume)
    result = trainer.fit()
    print(f"[{name}] {result.tokens_per_second:,.0f} tokens/s, train FVU {result.fvu:.4f}")
    return trainer.sae


def run_demo(out: str | Path = "runs/demo", cfg: DemoConfig | None = None) -> dict:
    cfg = cfg or DemoConfig()
    out = Path(out)
    synthetic = SyntheticActivations(SyntheticConfig(
        d_in=cfg.d_in, num_features=cfg.num_features, mean_active=cfg.mean_active,
        num_parents=cfg.num_features // 32, num_rows=10**9,
    ))
    train_rows = cfg.steps * cfg.batch_size
    held_out = TensorSource(synthetic.rows(train_rows, train_rows + cfg.eval_rows))
    n = cfg.num_latents
    base = dict(num_latents=n, k=cfg.k, batch_size=cfg.batch_size, total_tokens=train_rows,
                checkpoint_every=max(1, cfg.steps // 4), log_every=10)
    saes = {
        "topk": _train_or_reuse("topk", TrainConfig(**base), synthetic, out),
        "matryoshka": _train_or_reuse(
            "matryoshka", TrainConfig(**base, granularities=[n // 16, n // 8, n // 4, n // 2]),
            synthetic, out),
        "matryoshka_sampled": _train_or_reuse(
            "matryoshka_sampled", TrainConfig(**base, sampled_granularities=4), synthetic, out),
    }
    saes["topk_permuted_mean_sq"] = make_progressive(saes["topk"], held_out, "mean_sq")
    saes["topk_permuted_frequency"] = make_progressive(saes["topk"], held_out, "frequency")
    saes["matryoshka_sampled_permuted"] = make_progressive(
        saes["matryoshka_sampled"], held_out, "mean_sq")

    sizes = [n // 16, n // 8, n // 4, n // 2, n]
    results: dict = {"config": asdict(cfg), "granularities": sizes, "saes": {}}
    header = f"{'SAE':<30}" + "".join(f"{'G=' + str(g):>10}" for g in sizes) + f"{'MMCS':>8}"
    print("\nFVU on held-out synthetic activations, fixed relative sparsity k_G = k·G/N")
    print(header)
    print("-" * len(header))
    for name, sae in saes.items():
        metrics = [evaluate_reconstruction(sae, held_out, g) for g in sizes]
        mmcs = mean_max_cosine_similarity(sae.W_dec, synthetic.features)
        results["saes"][name] = {"fvu": [m.fvu for m in metrics], "l0": [m.l0 for m in metrics],
                                 "mmcs": mmcs}
        print(f"{name:<30}" + "".join(f"{m.fvu:>10.4f}" for m in metrics) + f"{mmcs:>8.3f}")
    print("MMCS: mean over ground-truth features of the best decoder cosine similarity.")
    write_json_atomic(out / "results.json", results)
    print(f"\nresults: {out / 'results.json'}")
    return results
