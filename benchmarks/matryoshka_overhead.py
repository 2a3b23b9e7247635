"""Matryoshka's step cost relative to TopK's, measured in one process with steps alternating.

    python benchmarks/matryoshka_overhead.py [--steps 48] [--train ROWS.npy]

train_speed.py times each trainer in its own processes, and this 2-core machine's speed
drifts from one process to the next by more than the few percent the Matryoshka loss adds
(its per-process medians of one TopK run spread ±6%). Here two `Trainer`s — TopK and
Matryoshka (|M| = 5, sizes N/16 … N), both with the defaults `ours_driver.py` trains with —
take turns on the same batches in one process, the order flipping every step, so drift hits
both alike. Each `train_step` is timed whole (loss, AuxK, backward, decoder-gradient
projection, AdamW, decoder normalisation, dead-latent bookkeeping); reading the batch is not.
The rows are the training benchmark's (train_speed.make_data's synthetic rows by default).
Prints the median step of each, the ratio of the medians and the median of the per-step
ratios, and writes benchmarks/results/matryoshka_overhead.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
N, K, B = 16384, 32, 4096


def matryoshka_sizes(num_latents: int) -> list[int]:
    """The benchmarks' Matryoshka granularities: N/16, N/8, N/4, N/2, N."""
    return [num_latents // f for f in (16, 8, 4, 2, 1)]


GRANULARITIES = matryoshka_sizes(N)
WARMUP = 3


def alternate(train: Path, steps: int, num_latents: int = N, k: int = K, batch: int = B,
              device: str = "cpu") -> dict[str, list[float]]:
    """Step a TopK and a Matryoshka trainer alternately on the first `steps` batches of
    `train`; returns each one's step times (ms), warm-up included."""
    from progressive_sae import TrainConfig, Trainer

    rows = np.load(train, mmap_mode="r")
    if rows.shape[0] < steps * batch:
        raise SystemExit(f"--train {train}: {rows.shape[0]:,} rows, {steps} steps of {batch} "
                         f"need {steps * batch:,}")
    sizes = {"topk": None, "matryoshka": matryoshka_sizes(num_latents)}
    trainers = {
        name: Trainer(TrainConfig(num_latents=num_latents, k=k, batch_size=batch,
                                  total_tokens=steps * batch, granularities=granularities,
                                  seed=0, device=device), str(train), progress=False)
        for name, granularities in sizes.items()
    }
    times: dict[str, list[float]] = {name: [] for name in trainers}
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for step in range(steps):
        x = torch.from_numpy(np.array(rows[step * batch:(step + 1) * batch]))
        order = list(trainers) if step % 2 == 0 else list(trainers)[::-1]
        for name in order:
            sync()
            start = time.perf_counter()
            trainers[name].train_step(x)
            sync()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def summarise(times: dict[str, list[float]]) -> dict[str, float]:
    topk, mat = times["topk"][WARMUP:], times["matryoshka"][WARMUP:]
    return {
        "topk_step_ms": statistics.median(topk),
        "matryoshka_step_ms": statistics.median(mat),
        "ratio_of_medians": statistics.median(mat) / statistics.median(topk),
        "median_step_ratio": statistics.median(m / t for m, t in zip(mat, topk)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--train", type=Path, default=None,
                        help="training rows (.npy, [T, d]); default: train_speed's synthetic")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "matryoshka_overhead.json")
    args = parser.parse_args()
    if args.steps <= WARMUP:
        parser.error(f"--steps {args.steps}: expected more than {WARMUP}")
    if args.train is None:
        sys.path.insert(0, str(HERE))
        from train_speed import make_data
        args.train = make_data(args.steps, 8192)[0]
    torch.set_num_threads(args.threads)
    times = alternate(args.train, args.steps, device=args.device)
    d = int(np.load(args.train, mmap_mode="r").shape[1])
    result = {
        "shape": {"d": d, "N": N, "k": K, "B": B, "granularities": GRANULARITIES,
                  "steps": args.steps, "warmup_excluded": WARMUP},
        "rows": args.train.name,
        "threads": args.threads,
        "device": args.device,
        **summarise(times),
        "step_ms": times,
    }
    print(f"d={d} N={N} k={K} B={B}, |M|=5, {args.steps} alternating steps each "
          f"({args.train.name}), {args.threads} threads")
    print(f"TopK {result['topk_step_ms']:.0f} ms, Matryoshka {result['matryoshka_step_ms']:.0f} ms"
          f" (median step); Matryoshka / TopK: {result['ratio_of_medians']:.3f} "
          f"(median of per-step ratios {result['median_step_ratio']:.3f})")
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
