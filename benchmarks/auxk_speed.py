"""Cost of the AuxK term in a training step, sparse code vs dense dead columns.

    python benchmarks/auxk_speed.py [--dead 0,64,368,768,1152,1536,2048] [--k-aux 384]

At the training benchmark's shape (d=768, N=16384, k=32, B=4096, bf16 selection where the
CPU has it) times the loss's forward + backward with a given number of dead latents, once
with AuxK as a sparse code of each row's k_aux largest dead pre-activations and once as
dense products over the dead latents' columns, and reports what AuxK adds to the step
with no dead latents. `objectives.DENSE_AUX_FACTOR` chooses between them in training.
Prints a table and writes benchmarks/results/auxk_speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import progressive_sae.objectives as objectives
from progressive_sae import SAEConfig, build_sae
from progressive_sae.kernels import fast_matmul_dtype

HERE = Path(__file__).resolve().parent
D, N, K, B = 768, 16384, 32, 4096


def loss_ms(sae, x: torch.Tensor, dead: torch.Tensor | None, k_aux: int, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first call warms up
        sae.zero_grad(set_to_none=True)
        start = time.perf_counter()
        objectives.sae_loss(sae, x, dead=dead, k_aux=k_aux).loss.backward()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dead", default="0,64,368,768,1152,1536,2048",
                        help="dead latent counts, comma-separated")
    parser.add_argument("--k-aux", type=int, default=384, help="the trainer's default at d=768")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "auxk_speed.json")
    args = parser.parse_args()
    counts = [int(c) for c in args.dead.split(",") if c]
    if any(c < 0 or c > N for c in counts) or args.k_aux < 1:
        parser.error(f"--dead {args.dead} / --k-aux {args.k_aux}: expected 0..{N} and >= 1")
    torch.set_num_threads(2)
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(d_in=D, num_latents=N, k=K))
    sae.selection_dtype = fast_matmul_dtype("cpu")
    x = torch.randn(B, D)
    base = loss_ms(sae, x, None, args.k_aux, args.repeats)
    rows = []
    default_factor = objectives.DENSE_AUX_FACTOR
    for count in (c for c in counts if c > 0):
        dead = torch.zeros(N, dtype=torch.bool)
        dead[torch.randperm(N)[:count]] = True
        cost = {}
        for path, factor in (("sparse", 0.0), ("dense", float("inf"))):
            objectives.DENSE_AUX_FACTOR = factor
            cost[path] = loss_ms(sae, x, dead, args.k_aux, args.repeats) - base
        objectives.DENSE_AUX_FACTOR = default_factor
        chosen = "dense" if count <= default_factor * args.k_aux else "sparse"
        rows.append({"dead": count, "sparse_ms": cost["sparse"], "dense_ms": cost["dense"],
                     "training_uses": chosen})
    print(f"d={D} N={N} k={K} B={B} k_aux={args.k_aux}, selection "
          f"{str(sae.selection_dtype).removeprefix('torch.')}, 2 threads; "
          f"loss fwd+bwd without dead latents: {base:.0f} ms")
    print(f"{'dead latents':>12}{'AuxK sparse ms':>16}{'AuxK dense ms':>15}  training uses")
    for r in rows:
        print(f"{r['dead']:>12}{r['sparse_ms']:>16.0f}{r['dense_ms']:>15.0f}  "
              f"{r['training_uses']}")
    result = {"shape": {"d": D, "N": N, "k": K, "B": B, "k_aux": args.k_aux},
              "selection_dtype": str(sae.selection_dtype).removeprefix("torch."),
              "dense_aux_factor": default_factor, "base_loss_ms": base, "rows": rows}
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
