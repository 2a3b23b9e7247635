"""What a training process's peak RSS is made of, read from the process itself.

    python benchmarks/memory_breakdown.py [--steps 24] [--num-latents 16384] [--no-auxk]

Trains our TopK SAE (d = 768, k = 32, B = 4096, the trainer's defaults, the training
benchmark's synthetic activations read batch by batch) in this process and reads, besides
/proc's VmRSS/VmHWM, glibc's own accounting of its main heap (`mallinfo2`): its extent and
the bytes in use. A thread samples the bytes in use every 0.5 ms, so each step's peak working
set is seen, not only the state between steps. Prints and writes
benchmarks/results/memory_breakdown.json with:

* the process before training (torch, numpy and progressive_sae imported; AdamW stepped once
  on one number): RSS, and the part of it that is heap;
* outside the heap after training: what the libraries that training first runs (oneDNN's
  GEMM, MKL's sparse products, OpenMP threads) added to the RSS outside the heap;
* in the heap between steps (parameters, AdamW's moments, the batch, Python's objects),
  at each step's peak (the working set), and the heap's extent (in use at the peak plus
  free-but-resident memory: the trainer keeps freed memory in the heap between steps,
  runtime.configure_cpu_allocator).

glibc on Linux only (the script says so and stops elsewhere).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import sys
import threading
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_speed import make_data  # noqa: E402

from progressive_sae import TrainConfig, Trainer  # noqa: E402
from progressive_sae.data.source import NpySource  # noqa: E402
from progressive_sae.train.adamw import FusedAdamW  # noqa: E402

MB = 2**20


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def glibc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallinfo2"):
        raise SystemExit("memory_breakdown: needs glibc ≥ 2.33 (mallinfo2) on Linux")
    libc.mallinfo2.restype = MallInfo2
    return libc


def proc_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024


class HeapSampler:
    """Bytes in use in glibc's main heap, sampled on a thread; peak since the last `take`."""

    def __init__(self, libc: ctypes.CDLL, period_s: float = 0.0005) -> None:
        self.libc, self.period = libc, period_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.libc.mallinfo2().uordblks)
            time.sleep(self.period)

    def __enter__(self) -> HeapSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def take(self) -> int:
        peak, self.peak = self.peak, 0
        return peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--num-latents", type=int, default=16384)
    parser.add_argument("--no-auxk", action="store_true",
                        help="a real run's 10M-token dead window: no latent is dead, no AuxK")
    parser.add_argument("--batch", type=int, default=4096, help="tokens per step")
    parser.add_argument("--data-dir", type=Path, default=HERE / ".data",
                        help="where the activations are cached")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "memory_breakdown.json")
    args = parser.parse_args()
    if args.steps < 2 or args.num_latents < 64 or args.batch < 1:
        parser.error(f"--steps {args.steps} / --num-latents {args.num_latents} / --batch "
                     f"{args.batch}: expected ≥ 2, ≥ 64 and ≥ 1")
    libc = glibc()
    torch.set_num_threads(2)
    train, _ = make_data(args.steps, 8192, batch=args.batch, folder=args.data_dir)

    p = torch.nn.Parameter(torch.zeros(1))
    p.grad = torch.zeros(1)
    FusedAdamW([p], lr=1e-3).step()
    before = {"rss_mb": proc_mb("VmRSS"), "heap_mb": libc.mallinfo2().arena / MB}
    del p

    cfg = TrainConfig(num_latents=args.num_latents, k=32, batch_size=args.batch,
                      total_tokens=args.batch * args.steps,
                      **({"dead_tokens": 10_000_000} if args.no_auxk else {}))
    trainer = Trainer(cfg, NpySource(train), progress=False)
    steps: list[dict[str, float]] = []
    step = trainer.train_step

    with HeapSampler(libc) as sampler:
        def timed_step(x: torch.Tensor) -> dict[str, float] | None:
            sampler.take()
            started = time.perf_counter()
            record = step(x)
            info = libc.mallinfo2()
            steps.append({
                "ms": (time.perf_counter() - started) * 1000,
                "heap_peak_in_use_mb": max(sampler.take(), info.uordblks) / MB,
                "heap_in_use_after_mb": info.uordblks / MB,
                "heap_extent_mb": info.arena / MB,
                "own_mappings_mb": info.hblkhd / MB,
                "rss_mb": proc_mb("VmRSS"), "hwm_mb": proc_mb("VmHWM"),
                "dead_fraction": trainer.tracker.dead_fraction(),
            })
            return record

        trainer.train_step = timed_step  # type: ignore[method-assign]
        trainer.fit()  # ends by handing the heap's free memory back: read before that

    last = steps[-1]
    extent = max(s["heap_extent_mb"] for s in steps)
    peak_in_use = max(s["heap_peak_in_use_mb"] for s in steps)
    between = last["heap_in_use_after_mb"]
    outside = last["rss_mb"] - last["heap_extent_mb"] - last["own_mappings_mb"]
    result = {
        "settings": {"d": 768, "num_latents": args.num_latents, "k": 32, "batch": args.batch,
                     "steps": args.steps, "auxk": not args.no_auxk,
                     "dead_tokens": cfg.resolved_dead_tokens()},
        "peak_rss_mb": max(s["hwm_mb"] for s in steps),
        "process_before_training_rss_mb": before["rss_mb"],
        "process_before_training_heap_mb": before["heap_mb"],
        "outside_heap_after_training_mb": outside,
        "outside_heap_added_by_training_mb": outside - (before["rss_mb"] - before["heap_mb"]),
        "heap_in_use_between_steps_mb": between,
        "heap_peak_in_use_mb": peak_in_use,
        "step_working_set_mb": peak_in_use - between,
        "heap_extent_mb": extent,
        "heap_free_but_resident_mb": extent - peak_in_use,
        "parameters_and_adam_mb": 3 * (2 * args.num_latents * 768 + args.num_latents + 768)
        * 4 / MB,
        "steps": steps,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        if key.endswith("_mb"):
            print(f"{key:38s} {value:8.1f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
