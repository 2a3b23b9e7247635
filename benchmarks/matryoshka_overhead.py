"""Matryoshka's step cost relative to TopK's, measured in one process with steps alternating.

    python benchmarks/matryoshka_overhead.py [--steps 40]

train_speed.py times each trainer in its own process, where this 2-core machine's speed
drifts by ±10% from one process to the next (the same TopK run measured 303–464 ms/step),
more than the few percent the Matryoshka loss adds. Here a TopK and a Matryoshka SAE
(|M| = 5, sizes N/16 … N) take turns on the same batches in one process (loss, backward,
decoder-gradient projection, fused AdamW, decoder normalisation: a training step without
data loading), so drift hits both alike. Prints the median step of each, the ratio of the
medians and the median of the per-step ratios, and writes
benchmarks/results/matryoshka_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from progressive_sae import SAEConfig, build_sae
from progressive_sae.kernels import fast_matmul_dtype
from progressive_sae.objectives import sae_loss
from progressive_sae.runtime import configure_cpu_allocator

HERE = Path(__file__).resolve().parent
D, N, K, B = 768, 16384, 32, 4096
GRANULARITIES = [N // f for f in (16, 8, 4, 2, 1)]
WARMUP = 3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "matryoshka_overhead.json")
    args = parser.parse_args()
    if args.steps <= WARMUP:
        parser.error(f"--steps {args.steps}: expected more than {WARMUP}")
    configure_cpu_allocator()  # as the trainer does
    torch.set_num_threads(2)
    torch.manual_seed(0)
    trainers = {}
    for name, sizes in (("topk", None), ("matryoshka", GRANULARITIES)):
        sae = build_sae(SAEConfig(d_in=D, num_latents=N, k=K, granularities=sizes))
        sae.selection_dtype = fast_matmul_dtype("cpu")
        optimizer = torch.optim.AdamW(sae.parameters(), lr=2e-4, fused=True)
        trainers[name] = (sae, optimizer, torch.tensor(sizes) if sizes else None)
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for step in range(args.steps):
        x = torch.randn(B, D) + 0.5
        order = list(trainers) if step % 2 == 0 else list(trainers)[::-1]
        for name in order:
            sae, optimizer, sizes = trainers[name]
            start = time.perf_counter()
            sae_loss(sae, x, granularities=sizes).loss.backward()
            sae.project_decoder_grad()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sae.normalize_decoder()
            times[name].append((time.perf_counter() - start) * 1000)
    topk, mat = (times[name][WARMUP:] for name in ("topk", "matryoshka"))
    result = {
        "shape": {"d": D, "N": N, "k": K, "B": B, "granularities": GRANULARITIES,
                  "steps": args.steps, "warmup_excluded": WARMUP},
        "selection_dtype": str(fast_matmul_dtype("cpu")).removeprefix("torch."),
        "topk_step_ms": statistics.median(topk),
        "matryoshka_step_ms": statistics.median(mat),
        "ratio_of_medians": statistics.median(mat) / statistics.median(topk),
        "median_step_ratio": statistics.median(m / t for m, t in zip(mat, topk)),
    }
    print(f"d={D} N={N} k={K} B={B}, |M|=5, {args.steps} alternating steps each, 2 threads")
    print(f"TopK {result['topk_step_ms']:.0f} ms, Matryoshka {result['matryoshka_step_ms']:.0f} ms"
          f" (median step); Matryoshka / TopK: {result['ratio_of_medians']:.3f} "
          f"(median of per-step ratios {result['median_step_ratio']:.3f})")
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
