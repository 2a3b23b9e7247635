"""What exact selection costs, and what the inexact rule it replaced got wrong.

    .venv/bin/python benchmarks/selection_speed.py [--steps 40] [--cache FOLDER]

Trains a TopK SAE (d=768, N=16384, k=32) for --steps steps on the train_speed benchmark's
synthetic activations, then encodes 4096 held-out rows (forward only, 2 threads) with

* `exact (default product)`: `sae.encode`, the fast product this machine picks (bf16 with
  native bf16, else fp32) proposing candidates and the exact decision;
* `exact (fp32 product)`: the same with an fp32 product;
* `plain bf16 top-k (inexact)`: what the encoder did before 2026-12-06: a bf16 product's own
  top-k in blocks of 1024 rows, the chosen latents' values recomputed in fp32;
* the dense products alone (bf16, fp32): the floor.

and prints the median of 7 timings of each, how many rows the candidates settled at once,
how many were widened and recomputed in fp32, and in how many rows the inexact rule chose
other latents than the exact values do. With --cache, the same on the first 4096 rows of an
activation cache and an SAE trained on it for --steps steps (e.g. the demo's
runs/demo/acts/train; N from --cache-latents). Writes benchmarks/results/selection_speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from progressive_sae import TrainConfig, Trainer  # noqa: E402
from progressive_sae.data.source import TensorSource  # noqa: E402
from progressive_sae.kernels import TopK, fast_matmul_dtype, selection  # noqa: E402
from progressive_sae.kernels.product_bound import exact_values  # noqa: E402

B = 4096


def median_ms(fn, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def plain_bf16_topk(sae, x: torch.Tensor) -> torch.Tensor:
    """The rule before exact selection: a bf16 product's own top-k, fp32 values."""
    x_c = x - sae.b_dec
    W, b = sae.W_enc.detach(), sae.b_enc.detach()
    x_m, W_m, b_m = x_c.bfloat16(), W.bfloat16(), b.bfloat16()
    chosen = []
    for start in range(0, x.shape[0], 1024):
        block = torch.addmm(b_m, x_m[start:start + 1024], W_m.t())
        chosen.append(block.topk(sae.cfg.k, dim=1, sorted=False).indices)
    indices = torch.cat(chosen)
    rows = torch.arange(x.shape[0])
    return torch.zeros(x.shape[0], W.shape[0]).scatter_(
        1, indices, exact_values(x_c, W, b, rows, indices).clamp_min(0))


def measure(name: str, train: torch.Tensor, held: torch.Tensor, steps: int, k: int,
            num_latents: int) -> dict:
    torch.manual_seed(0)
    cfg = TrainConfig(num_latents=num_latents, k=k, batch_size=B, total_tokens=B * steps,
                      seed=0)
    trainer = Trainer(cfg, TensorSource(train), progress=False)
    trainer.fit()
    sae = trainer.sae.eval()
    counts = {"unsettled_rows": 0, "fp32_rows": 0}
    widened, in_fp32 = selection._widened_topk, selection.ProductBlock.in_fp32

    def count_widened(block, *rest):
        counts["unsettled_rows"] += block.rows.numel()
        return widened(block, *rest)

    def count_fp32(block):
        counts["fp32_rows"] += block.rows.numel()
        return in_fp32(block)

    selection._widened_topk = count_widened
    selection.ProductBlock.in_fp32 = count_fp32
    try:
        with torch.no_grad():
            exact = sae.encode(held).to_dense(num_latents)
        settled = dict(counts)
        default = fast_matmul_dtype("cpu")
        times = {}
        with torch.no_grad():
            sae.selection_dtype = None
            times[f"exact ({str(default).removeprefix('torch.')} product)"] = median_ms(
                lambda: sae.encode(held))
            sae.selection_dtype = torch.float32
            times["exact (float32 product)"] = median_ms(lambda: sae.encode(held))
            sae.selection_dtype = None
            times["plain bf16 top-k (inexact)"] = median_ms(lambda: plain_bf16_topk(sae, held))
            x_c = held - sae.b_dec
            W, b = sae.W_enc.detach(), sae.b_enc.detach()
            for dtype in (torch.bfloat16, torch.float32):
                xm, Wm, bm = x_c.to(dtype), W.to(dtype), b.to(dtype)
                times[f"dense product alone ({str(dtype).removeprefix('torch.')})"] = (
                    median_ms(lambda xm=xm, Wm=Wm, bm=bm: torch.addmm(bm, xm, Wm.t())))
            inexact = plain_bf16_topk(sae, held)
            reference = TopK(k)(torch.addmm(b.double(), x_c.double(), W.double().t()).float())
    finally:
        selection._widened_topk, selection.ProductBlock.in_fp32 = widened, in_fp32
    exact_fp64_support = torch.zeros_like(exact).scatter_(1, reference[1], 1.0) > 0
    return {
        "data": name, "rows": B, "num_latents": num_latents, "k": k, "train_steps": steps,
        "default_product": str(default).removeprefix("torch."),
        "median_ms": {key: round(v, 1) for key, v in times.items()},
        "rows_settled_by_the_first_candidates": B - settled["unsettled_rows"],
        "rows_widened": settled["unsettled_rows"],
        "rows_recomputed_in_fp32": settled["fp32_rows"],
        "rows_where_plain_bf16_topk_chose_other_latents":
            int(((inexact > 0) != (exact > 0)).any(1).sum()),
        "rows_where_exact_differs_from_an_fp64_topk":
            int(((exact > 0) != exact_fp64_support).any(1).sum()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--cache-latents", type=int, default=4096,
                   help="N of the SAE trained on the cache")
    p.add_argument("--out", type=Path, default=HERE / "results" / "selection_speed.json")
    args = p.parse_args()
    torch.set_num_threads(2)
    import numpy as np
    from train_speed import make_data

    train_path, held_path = make_data(48, 8192)
    train = torch.from_numpy(np.load(train_path, mmap_mode="r")[: B * args.steps].copy())
    held = torch.from_numpy(np.load(held_path)[:B])
    results = [measure("synthetic (train_speed)", train, held, args.steps, 32, 16384)]
    if args.cache is not None:
        from progressive_sae.data.cache import CachedActivations

        source = CachedActivations(args.cache, shuffle_buffer=0)
        rows = source.rows(0, min(len(source), B * (args.steps + 1))).float()
        results.append(measure(f"cache {args.cache}", rows[B:], rows[:B], args.steps, 32,
                               args.cache_latents))
    for r in results:
        print(json.dumps(r, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"torch": torch.__version__, "results": results},
                                   indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
