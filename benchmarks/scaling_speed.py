"""How a training step's cost and memory grow with the number of latents N.

    python benchmarks/scaling_speed.py [--steps 48] [--repeats 3] [--only-points 65536x768]
    python benchmarks/scaling_speed.py --quick --skip-peers --out /tmp/scaling.json  # smoke run
    python benchmarks/scaling_speed.py --readme            # the markdown table of the JSON

Points (N x d): 16,384, 32,768 and 65,536 latents at d = 768, and 16,384 at d = 2,304
(Gemma-2-2b's width); k = 32, B = 4096, on synthetic LM-like activations of each width
(train_speed.make_data). At every point, in this one invocation: our TopK trainer
(ours_driver.py, its own process, --repeats runs interleaved over the points so that a slow
spell of the machine hits every point alike; the median over every timed step of them),
sparsify (its driver in its own venv, once), and the floor: the fastest dense encode product
[B, d] x [d, N] alone on this machine, into a preallocated output, in fp32 and in each half
dtype the hardware multiplies natively (bf16 with AVX512-BF16/AMX or on a GPU), measured
once a round beside our runs (median over the rounds).

Dead window. Our runs use AuxK's dead window of a real run, 10M tokens (the trainer's
default from 100M tokens on, and sparsify's dead-feature threshold), so, like sparsify,
whose AuxK is off by default, they train without AuxK: no latent can be dead within a run
this short. With the trainer's default for a run this short (tokens / 10, 1.6 steps) half
of the 65,536 latents count as dead after two steps, which no real run has, and AuxK's cost
(B·k_aux gathered rows, whatever N: benchmarks/auxk_speed.py) would be timed instead of the
step's growth with N. That run is still made once per point and recorded beside
(`ours_default_window_*`, with its dead fraction).

Checks, printed and recorded, never enforced: our step / floor grows by at most 10% from
the smallest to the largest N at d = 768; ours is faster than sparsify at every point; peak
RSS is within 10% of:

    predicted = baseline + rows(d) + 3·P + 2·N·d·4 + N·(d+c)·s + block·N·s        (bytes)

* baseline: peak RSS of a process that imports torch, numpy and progressive_sae and makes
  and steps the trainer's AdamW (train/adamw.py, which unlike torch.optim's imports no
  torch._dynamo) on one number,
  measured by this script.
* P = (2·N·d + N + d)·4: the fp32 parameters W_enc, W_dec [N, d], b_enc [N], b_dec [d];
  3·P = the parameters and AdamW's two moments.
* 2·N·d·4 (+ the bias gradients, in P's N + d): the gradients of W_enc and W_dec are dense
  N x d (kernels/row_accumulate.py writes whole matrices). (With dead latents, AuxK's dense
  path, at most DENSE_AUX_FACTOR·k_aux of them, adds its sparse-embedding gradients to
  them out of place: a third N x d matrix at the end of the backward pass.)
* N·(d+c)·s + block·N·s: the selection product's workspace (kernels/encoder_backward.py,
  product_bound.py): W_enc with the bound's columns and the bias's in the selection dtype
  (s = 2 and c = 3 for bf16, s = 4 and c = 2 for fp32) and one block of pre-activations,
  block = min(B, BLOCK_ROWS, BLOCK_BYTES / (N·s)) rows. Both are freed before the gradients
  exist but are counted in full: each is smaller than an N x d gradient, so the heap the
  trainer keeps (runtime.configure_cpu_allocator) can reuse their space for the gradients at
  best in part.
* rows(d): everything that does not grow with N (the batch and its B x d temporaries, the
  b_dec initialisation's rows, the allocator's slack), measured: the same run with
  N = 8·k latents, less the baseline and that run's own N terms above; the median of
  PROBE_RUNS such runs (one run's peak RSS moved by ±70 MB at d = 2304 with the allocator's
  slack: 731, 803, 803 and 868 MB in four).

Nothing is fitted: the N terms come from the code, baseline and rows(d) from their probes.
On a GPU the same terms are compared with the driver's peak GPU memory, without the
baseline. Writes benchmarks/results/scaling_speed.json (scaling_speed_cuda.json on a GPU)
and a plot beside it. Time it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))
from setup_venv import ensure_peer_venv  # noqa: E402
from train_speed import (  # noqa: E402
    PEER_PYTHON_HELP,
    encode_floor,
    make_data,
    pool_runs,
    run_driver,
)

from progressive_sae.kernels import fast_matmul_dtype  # noqa: E402
from progressive_sae.kernels.encoder_backward import BLOCK_BYTES, block_rows  # noqa: E402
from progressive_sae.kernels.product_bound import augmented_columns  # noqa: E402

FULL: dict[str, Any] = {
    "points": [(16384, 768), (32768, 768), (65536, 768), (16384, 2304)],
    "k": 32, "batch": 4096, "steps": 48, "repeats": 3, "eval_rows": 8192,
    "num_features": 16384, "dead_tokens": 10_000_000,
}
QUICK: dict[str, Any] = {
    "points": [(256, 64), (512, 64), (1024, 64), (256, 192)],
    "k": 8, "batch": 256, "steps": 6, "repeats": 1, "eval_rows": 1024, "num_features": 2048,
    "dead_tokens": 10_000_000,
}
"""--quick: tiny shapes that run every path in well under two minutes; timings mean nothing."""

PROBE_LATENTS_PER_K = 8
"""rows(d) is measured with N = this · k latents: a model too small to matter."""
PROBE_RUNS = 3
"""rows(d) is the median over this many probe runs."""
GROWTH_LIMIT = 0.10
"""Most our step / floor may grow from the smallest to the largest N at the base width."""
RSS_TOLERANCE = 0.10
"""Most measured peak memory may differ from the formula's, relative."""
RESULT = HERE / "results" / "scaling_speed.json"
MIB = 2**20

BASELINE_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy, torch
import _driver_common as common
from progressive_sae import TrainConfig, Trainer
from progressive_sae.train.adamw import FusedAdamW
torch.set_num_threads(2)
p = torch.nn.Parameter(torch.zeros(1))
p.grad = torch.zeros(1)
FusedAdamW([p], lr=1e-3).step()
print(common.peak_rss_mb())
"""


# -- the parts of a point -------------------------------------------------------------------
def label(n: int, d: int) -> str:
    return f"{n}x{d}"


def half_dtypes(device: torch.device) -> tuple[str, ...]:
    """The half-precision products this hardware multiplies natively."""
    if device.type == "cuda":
        return ("bf16", "fp16")
    names = ("bf16",) if fast_matmul_dtype(device) == torch.bfloat16 else ()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        flags = []
    return names + (("fp16",) if {"avx512_fp16", "amx_fp16"} & set(flags) else ())


def baseline_mb() -> float:
    """Peak RSS of a Python that imported what a driver imports and made its optimizer."""
    done = subprocess.run([sys.executable, "-c", BASELINE_PROBE, str(HERE / "peers")],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"baseline probe failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.split()[-1])


def memory_terms(n: int, d: int, batch: int, selection: torch.dtype) -> dict[str, float]:
    """The formula's N terms in MiB (module docstring); `selection`: the product's dtype."""
    params = (2 * n * d + n + d) * 4
    size = selection.itemsize
    block = block_rows(batch, n, size)
    return {
        "params_and_adam_mb": 3 * params / MIB,
        "gradients_mb": 2 * n * d * 4 / MIB,
        "selection_weights_mb": n * (d + augmented_columns(selection)) * size / MIB,
        "pre_activation_block_mb": block * n * size / MIB,
    }


def selection_dtype(record: dict) -> torch.dtype:
    """The dtype of the selection product the driver's trainer chose."""
    return getattr(torch, record["config"]["matmul_dtype"])


def measured_memory(record: dict, device: torch.device) -> float:
    """The driver's peak: host RSS on a CPU, the allocator's peak on a GPU."""
    if device.type == "cuda":
        return float(record["config"]["peak_gpu_mb"])
    return float(record["peak_rss_mb"])


def pooled_floor(rounds: list[dict[str, float]]) -> tuple[float, str, dict[str, float]]:
    """(fastest dtype's median over the rounds, its name, every dtype's median)."""
    by_dtype = {name.removesuffix("_ms"): statistics.median(r[name] for r in rounds)
                for name in rounds[0]}
    fastest = min(by_dtype, key=by_dtype.__getitem__)
    return by_dtype[fastest], fastest, by_dtype


def machine(device: torch.device) -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_model": model or platform.processor(), "cpu_count": os.cpu_count(),
        "native_half_dtypes": list(half_dtypes(device)), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "device": str(device),
        "gpu_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


# -- checks and output ----------------------------------------------------------------------
def checks(points: list[dict]) -> dict[str, Any]:
    """The issue's three conditions, from the measured points (None: not measured)."""
    widths = [p["d"] for p in points]
    base = max(set(widths), key=lambda d: (widths.count(d), -d))
    row = sorted((p for p in points if p["d"] == base), key=lambda p: p["num_latents"])
    growth = (row[-1]["ours_over_floor"] / row[0]["ours_over_floor"] - 1
              if len(row) > 1 else None)
    versus = [p["sparsify_step_ms"] is not None for p in points]
    return {
        "base_d": base,
        "step_over_floor_growth": growth,
        "step_over_floor_flat": growth <= GROWTH_LIMIT if growth is not None else None,
        "beats_sparsify_everywhere": (all(p["ours_step_ms"] < p["sparsify_step_ms"]
                                          for p in points) if all(versus) else None),
        "memory_within_tolerance": all(abs(p["memory_over_predicted"] - 1) <= RSS_TOLERANCE
                                       for p in points),
    }


def table(result: dict) -> str:
    mem = "peak GPU MB" if result["memory_kind"] == "gpu" else "peak RSS MB"
    lines = [
        f"| N | d | ours ms/step | floor ms | ours / floor | sparsify ms/step | ours vs "
        f"sparsify | {mem} (formula) | sparsify {mem} | FVU ours / sparsify | ours ms/step, "
        f"short dead window (dead) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in result["points"]:
        sp = p["sparsify_step_ms"]
        lines.append(
            f"| {p['num_latents']:,} | {p['d']:,} | {p['ours_step_ms']:,.0f} | "
            f"{p['floor_ms']:,.0f} ({p['floor_dtype']}) | {p['ours_over_floor']:.2f} | "
            + (f"{sp:,.0f} | {sp / p['ours_step_ms']:.2f}x | " if sp is not None else "– | – | ")
            + f"{p['peak_memory_mb']:,.0f} ({p['predicted_memory_mb']:,.0f}) | "
            + (f"{p['sparsify_peak_memory_mb']:,.0f} | " if sp is not None else "– | ")
            + f"{p['ours_fvu']:.4f} / "
            + (f"{p['sparsify_fvu']:.4f} | " if sp is not None else "– | ")
            + f"{p['ours_default_window_step_ms']:,.0f} "
            f"({p['ours_default_window_dead_fraction']:.0%}) |")
    return "\n".join(lines)


def report_checks(result: dict) -> None:
    c = result["checks"]
    growth = c["step_over_floor_growth"]
    if growth is not None:
        print(f"our step / floor from the smallest to the largest N at d = {c['base_d']}: "
              f"{growth:+.1%} (limit +{GROWTH_LIMIT:.0%}): "
              + ("holds" if c["step_over_floor_flat"] else "FAILS"))
    if c["beats_sparsify_everywhere"] is not None:
        print("ours faster than sparsify at every point: "
              + ("holds" if c["beats_sparsify_everywhere"] else "FAILS"))
    kind = "peak GPU memory" if result["memory_kind"] == "gpu" else "peak RSS"
    for p in result["points"]:
        ratio = p["memory_over_predicted"]
        flag = "" if abs(ratio - 1) <= RSS_TOLERANCE else f"   <- more than {RSS_TOLERANCE:.0%} off"
        print(f"{label(p['num_latents'], p['d']):>12}: {kind} {p['peak_memory_mb']:,.0f} MB, "
              f"formula {p['predicted_memory_mb']:,.0f} MB, measured / formula {ratio:.3f}{flag}")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points, base = result["points"], result["checks"]["base_d"]
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(11, 4.2))
    for d in sorted({p["d"] for p in points}):
        row = sorted((p for p in points if p["d"] == d), key=lambda p: p["num_latents"])
        n = [p["num_latents"] for p in row]
        style = {"linestyle": "-" if d == base else "none",
                 "fillstyle": "full" if d == base else "none"}
        speed.plot(n, [p["ours_step_ms"] for p in row], "o", color="C0",
                   label=f"ours (TopK), d={d}", **style)
        speed.plot(n, [p["floor_ms"] for p in row], "s", color="C2",
                   label=f"dense encode product alone, d={d}", **style)
        if all(p["sparsify_step_ms"] is not None for p in row):
            speed.plot(n, [p["sparsify_step_ms"] for p in row], "^", color="C3",
                       label=f"sparsify, d={d}", **style)
        memory.plot(n, [p["peak_memory_mb"] for p in row], "o", color="C0",
                    label=f"measured, d={d}", **style)
        memory.plot(n, [p["predicted_memory_mb"] for p in row], "x", color="C1",
                    label=f"formula, d={d}", **style)
    speed.set_yscale("log")
    memory.set_ylim(bottom=0)
    for ax, what in ((speed, "ms per step"), (memory, result["memory_label"])):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("latents N")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    s = result["settings"]
    speed.set_title(f"training step, k={s['k']}, B={s['batch']}", fontsize=10)
    memory.set_title("peak memory of our trainer", fontsize=10)
    fig.suptitle(f"{result['machine']['cpu_model'] or result['machine']['device']}"
                 + (f" / {result['machine']['gpu_name']}" if result["machine"]["gpu_name"]
                    else f", {result['machine']['threads']} threads"), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the run --------------------------------------------------------------------------------
def parse_points(text: str | None, allowed: list[tuple[int, int]]) -> list[tuple[int, int]]:
    if text is None:
        return list(allowed)
    names = [t.strip() for t in text.split(",") if t.strip()]
    known = {label(n, d): (n, d) for n, d in allowed}
    unknown = [t for t in names if t not in known]
    if unknown or not names:
        raise ValueError(f"--only-points {text!r}: expected a comma-separated subset of "
                         f"{', '.join(known)}")
    return [p for p in allowed if label(*p) in names]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a smoke run")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 48)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs of ours per point, interleaved over the points (default 3)")
    parser.add_argument("--only-points", default=None,
                        help="comma-separated NxD points, e.g. 16384x768,65536x768")
    parser.add_argument("--skip-peers", action="store_true", help="no sparsify")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--wheels", type=Path, default=None,
                        help="install sparsify from these wheels, without an index")
    parser.add_argument("--data-dir", type=Path, default=HERE / ".data",
                        help="where the activations are cached")
    parser.add_argument("--peer-python", type=Path, default=None,
                        help=PEER_PYTHON_HELP)
    parser.add_argument("--out", type=Path, default=None, help="result JSON path")
    parser.add_argument("--readme", action="store_true",
                        help="only print the markdown table of the result JSON (--out)")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = "scaling_speed.json" if device.type == "cpu" else f"scaling_speed_{device.type}.json"
    out = args.out or HERE / "results" / name
    if args.readme:
        if not out.is_file():
            parser.error(f"--readme: {out} does not exist; run the benchmark first")
        print(table(json.loads(out.read_text())))
        return
    setting = dict(QUICK if args.quick else FULL)
    for flag in ("steps", "repeats"):
        value = getattr(args, flag)
        if value is not None:
            if value < 1:
                parser.error(f"--{flag} {value}: expected at least 1")
            setting[flag] = value
    try:
        points = parse_points(args.only_points, setting["points"])
    except ValueError as e:
        parser.error(str(e))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    torch.set_num_threads(2)
    k, batch, steps = setting["k"], setting["batch"], setting["steps"]
    load_start, started = list(os.getloadavg()), time.perf_counter()

    data = {d: make_data(steps, setting["eval_rows"], d=d, batch=batch,
                         num_features=setting["num_features"], folder=args.data_dir,
                         tag=f"_d{d}")
            for d in sorted({d for _, d in points})}
    scratch = args.data_dir / "results" / "scaling"
    scratch.mkdir(parents=True, exist_ok=True)
    ours_driver = HERE / "ours_driver.py"

    def ours(n: int, d: int, tag: str, real_window: bool = True) -> dict:
        window = ["--dead-tokens", str(setting["dead_tokens"])] if real_window else []
        record = run_driver(Path(sys.executable), ours_driver, *data[d], steps,
                            scratch / f"ours_{label(n, d)}_{tag}.json", args.device, window,
                            num_latents=n, k=k, batch=batch)
        assert record is not None  # check=True raises instead
        return record

    baseline = baseline_mb() if device.type == "cpu" else 0.0
    probe_n = PROBE_LATENTS_PER_K * k
    probes = {d: [ours(probe_n, d, f"probe{i}") for i in range(PROBE_RUNS)] for d in data}

    halves = half_dtypes(device)
    floors: dict[tuple[int, int], list[dict[str, float]]] = {p: [] for p in points}
    runs: dict[tuple[int, int], list[dict]] = {p: [] for p in points}
    for r in range(setting["repeats"]):  # interleaved, so a slow spell hits every point alike
        for n, d in points:
            floors[(n, d)].append(encode_floor(device, batch, d, n, ("fp32", *halves)))
            runs[(n, d)].append(ours(n, d, str(r)))
    short_window = {p: ours(*p, "default_window", real_window=False) for p in points}
    sparsify: dict[tuple[int, int], dict] = {}
    if not args.skip_peers:
        venv_device = "cuda" if device.type == "cuda" else "cpu"
        python = args.peer_python or ensure_peer_venv("sparsify", HERE / ".venvs",
                                                      venv_device, args.wheels)
        for n, d in points:
            sparsify[(n, d)] = run_driver(  # type: ignore[assignment]
                python, HERE / "peers" / "sparsify_driver.py", *data[d], steps,
                scratch / f"sparsify_{label(n, d)}.json", args.device,
                num_latents=n, k=k, batch=batch)

    results = []
    for n, d in points:
        mine = pool_runs(runs[(n, d)])
        floor_ms, floor_dtype, by_dtype = pooled_floor(floors[(n, d)])
        s = selection_dtype(mine)
        probe = probes[d][0]
        probe_mb = statistics.median(measured_memory(p, device) for p in probes[d])
        rows_mb = (probe_mb - baseline
                   - sum(memory_terms(probe_n, d, batch, selection_dtype(probe)).values()))
        terms = {"baseline_mb": baseline, "rows_mb": rows_mb, **memory_terms(n, d, batch, s)}
        predicted = sum(terms.values())
        peer = sparsify.get((n, d))
        measured = measured_memory(mine, device)
        results.append({
            "num_latents": n, "d": d,
            "ours_step_ms": mine["step_ms"], "ours_step_ms_mean": mine["step_ms_mean"],
            "ours_step_ms_per_run": mine["step_ms_per_run"],
            "ours_tokens_per_s": mine["tokens_per_s"],
            "floor_ms": floor_ms, "floor_dtype": floor_dtype, "floor_ms_by_dtype": by_dtype,
            "ours_over_floor": mine["step_ms"] / floor_ms,
            "selection_dtype": mine["config"]["matmul_dtype"],
            "sparsify_step_ms": peer["step_ms"] if peer else None,
            "speedup_vs_sparsify": peer["step_ms"] / mine["step_ms"] if peer else None,
            "peak_rss_mb": mine["peak_rss_mb"],
            "peak_gpu_mb": mine["config"].get("peak_gpu_mb"),
            "peak_memory_mb": measured,
            "predicted_memory_mb": predicted,
            "memory_over_predicted": measured / predicted,
            "memory_terms_mb": terms,
            "sparsify_peak_rss_mb": peer["peak_rss_mb"] if peer else None,
            "sparsify_peak_memory_mb": measured_memory(peer, device) if peer else None,
            "ours_fvu": mine["fvu"], "sparsify_fvu": peer["fvu"] if peer else None,
            "page_faults_per_step": mine["page_faults_per_step"],
            "dead_tokens": mine["config"]["dead_tokens"],
            "dead_fraction": mine["config"]["dead_fraction"],
            "ours_default_window_step_ms": short_window[(n, d)]["step_ms"],
            "ours_default_window_dead_tokens": short_window[(n, d)]["config"]["dead_tokens"],
            "ours_default_window_dead_fraction": short_window[(n, d)]["config"]["dead_fraction"],
            "ours_default_window_peak_rss_mb": short_window[(n, d)]["peak_rss_mb"],
        })

    gpu = device.type == "cuda"
    result: dict[str, Any] = {
        "machine": machine(device) | {"loadavg_start": load_start,
                                      "loadavg_end": list(os.getloadavg())},
        "settings": {"quick": args.quick, "k": k, "batch": batch, "steps": steps,
                     "tokens_per_run": steps * batch, "repeats_of_ours": setting["repeats"],
                     "eval_rows": setting["eval_rows"],
                     "data_features": setting["num_features"],
                     "points": [label(*p) for p in points], "peers": not args.skip_peers,
                     "floor_dtypes": ["fp32", *halves], "probe_num_latents": probe_n,
                     "block_bytes": BLOCK_BYTES, "dead_tokens": setting["dead_tokens"]},
        "memory_kind": "gpu" if gpu else "rss",
        "memory_label": "peak GPU memory MB" if gpu else "peak RSS MB",
        "memory_formula": (("" if gpu else "baseline + ") + "rows(d) + 3·(2·N·d + N + d)·4 "
                           "+ 2·N·d·4 + N·(d+c)·s + block·N·s bytes; s = selection dtype "
                           "bytes, c = 3 (bf16) or 2 (fp32), "
                           "block = min(B, BLOCK_ROWS, BLOCK_BYTES/(N·s)); "
                           "rows(d) measured at N = probe_num_latents"),
        "baseline_rss_mb": baseline if not gpu else None,
        "seconds": time.perf_counter() - started,
        "points": results,
    }
    result["checks"] = checks(results)

    where = (f"GPU {result['machine']['gpu_name']}" if gpu else
             f"CPU {result['machine']['cpu_model']}, {torch.get_num_threads()} threads")
    print(f"\nk={k} B={batch}, {steps} steps a run, runs of ours a point: "
          f"{setting['repeats']}, {where}; load average {load_start[0]:.1f} at the start, "
          f"{result['machine']['loadavg_end'][0]:.1f} at the end")
    print(table(result))
    report_checks(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
