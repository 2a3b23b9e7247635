"""Training speed, memory and sample efficiency against EleutherAI sparsify and SAELens.

    python benchmarks/train_speed.py [--steps 48] [--skip-peers]

All trainers run in their own processes (peers in their own virtual environments with
torch held at 2.13.0) on the same synthetic activations, read in the same order, and are
scored by the same FVU code on the same held-out rows. Prints a table and writes
benchmarks/results/train_speed.json. Time it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))
from setup_venv import ensure_peer_venv  # noqa: E402

from progressive_sae import SAEConfig, build_sae  # noqa: E402
from progressive_sae.data import SyntheticActivations, SyntheticConfig  # noqa: E402

D, N, K, B = 768, 16384, 32, 4096


def make_data(steps: int, eval_rows: int) -> tuple[Path, Path]:
    """Synthetic LM-like activations (16384 power-law features), cached under .data/."""
    folder = HERE / ".data"
    folder.mkdir(exist_ok=True)
    train, held = folder / f"train_{steps}x{B}.npy", folder / f"eval_{eval_rows}.npy"
    synthetic = SyntheticActivations(SyntheticConfig(
        d_in=D, num_features=N, mean_active=32, zipf_exponent=0.8, noise_std=0.02,
        num_parents=256, num_rows=10**9, seed=0,
    ))
    if not train.exists():
        print(f"generating {steps * B:,} training rows …", flush=True)
        out = np.lib.format.open_memmap(train.with_suffix(".tmp.npy"), mode="w+",
                                        dtype=np.float32, shape=(steps * B, D))
        for start in range(0, steps * B, B):
            out[start:start + B] = synthetic.rows(start, start + B).numpy()
        out.flush()
        del out
        train.with_suffix(".tmp.npy").rename(train)
    if not held.exists():
        start = 10**8  # far from the training rows
        np.save(held, synthetic.rows(start, start + eval_rows).numpy())
    return train, held


def median_ms(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def encode_floor() -> dict[str, float]:
    """The dense encode matmul alone [B, d] × [d, N], in bf16, fp16, fp32 and int8.

    Written into a preallocated output so that only the multiplication is timed, not the
    page faults of a fresh B × N buffer. int8 (fbgemm: weights quantized per latent, inputs
    per batch, int32 sums) is timed beside them because it is the one product faster than
    fp32 on a CPU without native bf16: the floor an int8 latent selection would face.
    """
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(B, D, generator=g), torch.randn(N, D, generator=g)
    bias = torch.zeros(N)
    out = torch.empty(B, N)
    fp32 = median_ms(lambda: torch.addmm(bias, x, w.t(), out=out), repeats=9)
    xb, wb, bb = x.bfloat16(), w.bfloat16(), bias.bfloat16()
    out_b = out.bfloat16()
    bf16 = median_ms(lambda: torch.addmm(bb, xb, wb.t(), out=out_b), repeats=3)
    xh, wh, bh = x.half(), w.half(), bias.half()
    out_h = out.half()
    fp16 = median_ms(lambda: torch.addmm(bh, xh, wh.t(), out=out_h), repeats=3)
    return {"bf16_ms": bf16, "fp16_ms": fp16, "fp32_ms": fp32, "int8_ms": int8_floor(x, w, bias)}


def int8_floor(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor) -> float:
    """fbgemm's int8 × int8 → fp32 linear (dynamic activation quantization), or NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # these fbgemm entry points are marked deprecated
        try:
            q, col_offsets, scale, zero = torch.fbgemm_linear_quantize_weight(w)
            packed = torch.fbgemm_pack_quantized_matrix(q)
            return median_ms(lambda: torch.fbgemm_linear_int8_weight_fp32_activation(
                x, w, packed, col_offsets, scale, zero, bias), repeats=5)
        except (RuntimeError, AttributeError):
            return float("nan")


def truncate_speedup() -> dict[str, float]:
    """Encode time at N divided by encode time of the SAE truncated to G."""
    sae = build_sae(SAEConfig(d_in=D, num_latents=N, k=K)).eval()
    x = torch.randn(B, D)
    with torch.no_grad():
        full = median_ms(lambda: sae.encode(x))
        out = {}
        for frac in (8, 4, 2):
            small = sae.truncate(N // frac).eval()
            out[f"N/{frac}"] = full / median_ms(lambda s=small: s.encode(x))
    return out


def run_driver(python: Path, script: Path, train: Path, held: Path, steps: int, out: Path,
               extra: list[str] | None = None) -> dict:
    cmd = [str(python), str(script), "--train", str(train), "--eval", str(held),
           "--num-latents", str(N), "--k", str(K), "--batch-size", str(B),
           "--steps", str(steps), "--threads", "2", "--out", str(out), *(extra or [])]
    print("$", " ".join(cmd[1:3]), "…", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{script.name} failed:\n{done.stderr[-4000:]}")
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--eval-rows", type=int, default=8192)
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)

    train, held = make_data(args.steps, args.eval_rows)
    scratch = HERE / ".data" / "results"
    scratch.mkdir(exist_ok=True)
    floor = encode_floor()
    runs = {
        "topk": run_driver(Path(sys.executable), HERE / "ours_driver.py", train, held,
                           args.steps, scratch / "topk.json"),
        "matryoshka": run_driver(
            Path(sys.executable), HERE / "ours_driver.py", train, held, args.steps,
            scratch / "matryoshka.json",
            ["--granularities", ",".join(str(N // f) for f in (16, 8, 4, 2, 1))]),
    }
    if not args.skip_peers:
        for name in ("sparsify", "saelens"):
            python = ensure_peer_venv(name, HERE / ".venvs")
            runs[name] = run_driver(python, HERE / "peers" / f"{name}_driver.py", train, held,
                                    args.steps, scratch / f"{name}.json")
    speedup = truncate_speedup()

    limit = floor["bf16_ms"]
    floor_ms = min(floor[name] for name in ("bf16_ms", "fp16_ms", "fp32_ms"))
    result = {
        "machine": {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "processor": platform.processor(), "threads": torch.get_num_threads()},
        "shape": {"d": D, "N": N, "k": K, "B": B, "steps": args.steps,
                  "tokens": args.steps * B},
        "limit_ms": limit,
        "limit_fp32_ms": floor["fp32_ms"],
        "limit_fp16_ms": floor["fp16_ms"],
        "limit_int8_ms": floor["int8_ms"],
        "floor_ms": floor_ms,
        "topk_step_ms": runs["topk"]["step_ms"],
        "matryoshka_step_ms": runs["matryoshka"]["step_ms"],
        "truncate_speedup": speedup,
        "peak_rss_mb": runs["topk"]["peak_rss_mb"],
        "runs": {name: {k: r[k] for k in ("step_ms", "tokens_per_s", "peak_rss_mb", "fvu")}
                 for name, r in runs.items()},
    }
    for name, r in runs.items():
        result[f"{name}_fvu"] = r["fvu"]
        result[f"{name}_tokens_per_s"] = r["tokens_per_s"]
    if "sparsify" in runs:
        result["sparsify_step_ms"] = runs["sparsify"]["step_ms"]
        result["saelens_step_ms"] = runs["saelens"]["step_ms"]
        result["speedup_vs_sparsify"] = runs["sparsify"]["step_ms"] / runs["topk"]["step_ms"]
        result["fvu_ratio_vs_sparsify"] = runs["topk"]["fvu"] / runs["sparsify"]["fvu"]
        # A TopK step does at least one dense encode; in the fastest floating dtype here,
        # no trainer can beat sparsify by more than this, whatever else it saves.
        result["max_float_speedup_vs_sparsify"] = runs["sparsify"]["step_ms"] / floor_ms

    print(f"\nd={D} N={N} k={K} B={B}, {args.steps} steps ({args.steps * B:,} tokens), "
          f"CPU {result['machine']['cpu_capability']}, 2 threads")
    print(f"dense encode matmul alone: bf16 {floor['bf16_ms']:.0f} ms, "
          f"fp16 {floor['fp16_ms']:.0f} ms, fp32 {floor['fp32_ms']:.0f} ms "
          f"(floor {floor_ms:.0f} ms), int8 {floor['int8_ms']:.0f} ms")
    print(f"{'trainer':<22}{'step ms':>10}{'tokens/s':>12}{'peak RSS MB':>13}{'FVU':>9}")
    for name, r in runs.items():
        print(f"{name:<22}{r['step_ms']:>10.0f}{r['tokens_per_s']:>12,.0f}"
              f"{r['peak_rss_mb']:>13,.0f}{r['fvu']:>9.4f}")
    print("truncated encode speed-up: "
          + ", ".join(f"G={g}: {s:.2f}x" for g, s in speedup.items()))
    if "sparsify" in runs:
        print(f"TopK vs sparsify: {result['speedup_vs_sparsify']:.2f}x tokens/s, "
              f"FVU ratio {result['fvu_ratio_vs_sparsify']:.3f}; the floating-point encode "
              f"floor alone caps any trainer at {result['max_float_speedup_vs_sparsify']:.2f}x")
    out = HERE / "results" / "train_speed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
