"""Many SAEs from one streamed LM pass, against one pass per SAE and against a disk cache.

    python benchmarks/stream_speed.py [--lm offline-default,smollm2-135m] [--steps N]
    python benchmarks/stream_speed.py --quick --out /tmp/stream_speed.json   # smoke run
    python benchmarks/stream_speed.py --readme          # the tables of the results JSON

For each LM the same SAEs (TopK, and Matryoshka with granularities N/4, N/2, N, at each of
--num-latents; k = 32; one hook) are trained three ways, each command a `psae` process of
its own, timed wall-clock, its peak RSS read by /usr/bin/time:

* one_pass: one `psae train` with a streamed `data:` section and `saes:` (the LM runs once,
  every SAE steps on the same batches);
* separate_passes: the same streamed config, one `psae train` per SAE (the LM runs once
  per SAE);
* cache: `psae extract` of the tokens once, then one `psae train` per SAE from the cache.

Beside them, three probes: Python with the package imported (`baseline`), the LM loaded and
run over passes of windows_per_pass windows (`lm`: its speed and memory), and the same SAEs
trained in one pass on random rows with no LM (`train`: the SAE steps' time and memory).
From those, `rss_bound` puts together the memory StreamConfig's docstring states (LM + one
pass's rows + training + the mixing buffer) beside the measured peak of the one pass, and
`predicted_separate_over_one_pass` = (n·L + S)/(L + S), with L the LM's time per batch and S
all n SAEs' time per step (the training probe's loop, b_dec init and final save included),
is the gain a single pass can have once process start-up is left aside.

Writes benchmarks/results/stream_speed.json (or --out) and prints a table per LM. Run it on
an idle machine: every way is timed once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULT = HERE / "results" / "stream_speed.json"
TIME = Path("/usr/bin/time")
WAYS = ("one_pass", "separate_passes", "cache")

LMS = {"offline-default": {"hook": "layers.2", "steps": 24},
       "smollm2-135m": {"hook": "layers.9", "steps": 12}}
"""Hook and steps (of --batch-size tokens) per SAE, chosen so that both LMs together should
take about 15 minutes on a quiet 2-core CPU (an estimate from the LMs' and the SAE steps'
speeds, not a measurement: the JSON's wall_seconds is). The separate passes take most of it:
they run the LM once per SAE."""

FULL = {"batch_size": 4096, "num_latents": [2048, 4096, 8192], "windows_per_pass": 16}
QUICK = {"batch_size": 256, "num_latents": [128], "windows_per_pass": 2, "steps": 3}
"""--quick: two SAEs, a few hundred tokens each: every path, its time all process start-up."""

TEXT = {"source": "cpython-docs", "ctx": 256}


# -- measuring one command ---------------------------------------------------------------
def measured(cmd: list[str], log: Path, env: dict[str, str]) -> dict[str, float]:
    """Run `cmd` to completion: its wall seconds and peak RSS (MB).

    /usr/bin/time forks the command from its own small process, so the peak is the
    command's alone (a child exec'd straight from a larger Python can report its parent's
    peak as ru_maxrss)."""
    rss = log.with_suffix(".rss")
    started = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run([str(TIME), "-f", "%M", "-o", str(rss), *cmd], stdout=out,
                              stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise SystemExit(f"{' '.join(cmd)} failed (exit {done.returncode}):\n{tail}")
    peak_kb = int(rss.read_text().split()[-1])  # GNU time: maximum resident set size, KB
    return {"seconds": seconds, "peak_rss_mb": peak_kb / 1024}


def psae(*args: str) -> list[str]:
    return [sys.executable, "-m", "progressive_sae.cli", *args]


def child(mode: str, spec: dict[str, Any], result: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", mode,
            "--spec", json.dumps(spec), "--result", str(result)]


def disk_mb(*paths: Path) -> float:
    """Space the files under `paths` take on disk (allocated blocks, as du)."""
    total = 0
    for path in paths:
        for file in [path] if path.is_file() else path.rglob("*"):
            if file.is_file() and not file.is_symlink():
                total += file.stat().st_blocks * 512
    return total / 2**20


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# -- what a run's files say --------------------------------------------------------------
def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor shapes from a .safetensors header (8-byte length, then JSON), without torch."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def stream_lm_tokens(out: Path) -> int:
    """Rows the LM computed in a streamed run: those taken into the mixing buffer and those
    of the last pass not taken yet (the final stream state records both)."""
    step = int((out / "stream" / "LATEST").read_text())
    folder = out / "stream" / f"step_{step:08d}"
    info = json.loads((folder / "rank_0.json").read_text())
    pending = safetensors_shapes(folder / "rank_0.safetensors").get("pending", [0])[0]
    return int(info["rows_read"]) + int(pending)


def cache_rows(cache: Path) -> int:
    manifest = json.loads((cache / "manifest.json").read_text())
    return sum(int(s["rows"]) for s in manifest["shards"])


# -- the SAEs ----------------------------------------------------------------------------
def sae_entries(num_latents: list[int], k: int) -> list[dict[str, Any]]:
    """TopK and Matryoshka (N/4, N/2, N) at each N, named as `psae train` names them."""
    entries = []
    for n in num_latents:
        entries.append({"name": f"topk-N{n}-k{k}", "num_latents": n, "k": k})
        entries.append({"name": f"topk-N{n}-k{k}-matryoshka", "num_latents": n, "k": k,
                        "granularities": [n // 4, n // 2, n]})
    return entries


def fields(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "name"}


# -- one LM ------------------------------------------------------------------------------
def bench_lm(model: str, hook: str, steps: int, opts: dict[str, Any], work: Path,
             env: dict[str, str], baseline_mb: float) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    logs = work / "logs"
    logs.mkdir(parents=True)
    batch, wpp = opts["batch_size"], opts["windows_per_pass"]
    tokens = steps * batch
    buffer_tokens = opts["buffer_batches"] * batch
    saes = sae_entries(opts["num_latents"], opts["k"])
    shared = {"batch_size": batch, "total_tokens": tokens, "init_rows": min(8192, tokens),
              "checkpoint_every": opts["checkpoint_every"], "seed": 0, "device": "cpu"}
    stream = {"text": TEXT, "lm": {"model": model}, "hook": hook,
              "buffer_tokens": buffer_tokens, "windows_per_pass": wpp}

    def say(text: str) -> None:
        print(f"[{model}] {text}", flush=True)

    # Probes. The LM probe goes first: it also makes any first-load conversion (SmolLM2's
    # de-quantised weights) before a timed way could pay for it.
    say("probe: the LM alone")
    lm_probe = run_child("lm", {"model": model, "hook": hook, "windows_per_pass": wpp,
                                "passes": 2}, work / "lm_probe.json", logs, env)
    d = int(lm_probe["d_model"])
    say(f"probe: {len(saes)} SAEs on random rows (no LM)")
    train_probe = run_child("train", {"hook": hook, "d": d, "shared": shared, "saes": saes,
                                      "out": str(work / "train_probe")},
                            work / "train_probe.json", logs, env)
    shutil.rmtree(work / "train_probe", ignore_errors=True)

    run = Ways(model, hook, stream, shared, saes, opts, work, env, say)
    one_pass, separate, cached = run.one_pass(), run.separate_passes(), run.cache()
    ways = {"one_pass": one_pass, "separate_passes": separate, "cache": cached}
    lm_step = batch / lm_probe["lm_tokens_per_s"]
    sae_step = train_probe["seconds"] / steps
    n = len(saes)
    return {
        "settings": {"model": model, "hook": hook, "d_model": d, "steps": steps,
                     "tokens_per_sae": tokens, "buffer_tokens": buffer_tokens,
                     "windows_per_pass": wpp, "saes": saes, "train": shared,
                     "stream": stream},
        **ways,
        "one_pass_seconds": one_pass["seconds"],
        "separate_passes_seconds": separate["seconds"],
        "cache_seconds": cached["seconds"],
        "ratio": {"separate_over_one_pass": separate["seconds"] / one_pass["seconds"],
                  "cache_over_one_pass": cached["seconds"] / one_pass["seconds"]},
        "target_3x_holds": separate["seconds"] >= 3 * one_pass["seconds"],
        "probes": {"lm": lm_probe, "train": train_probe},
        "lm_seconds_per_step": lm_step,
        "saes_seconds_per_step": sae_step,
        "predicted_separate_over_one_pass": (n * lm_step + sae_step) / (lm_step + sae_step),
        "rss_bound_mb": rss_bound(lm_probe, train_probe, baseline_mb, buffer_tokens, d,
                                  opts["stream_dtype_bytes"], one_pass["peak_rss_mb"]),
    }


class Ways:
    """The three ways of training one LM's SAEs, each as its `psae` commands."""

    def __init__(self, model: str, hook: str, stream: dict[str, Any], shared: dict[str, Any],
                 saes: list[dict[str, Any]], opts: dict[str, Any], work: Path,
                 env: dict[str, str], say: Callable[[str], None]) -> None:
        self.model, self.hook, self.stream, self.shared = model, hook, stream, shared
        self.saes, self.opts, self.work, self.env, self.say = saes, opts, work, env, say
        self.logs, self.tokens = work / "logs", shared["total_tokens"]
        self.sae_tokens = len(saes) * self.tokens

    def _psae(self, name: str, *args: str) -> dict[str, float]:
        return measured(psae(*args), self.logs / f"{name}.log", self.env)

    def one_pass(self) -> dict[str, Any]:
        self.say(f"one pass: {len(self.saes)} SAEs × {self.tokens:,} tokens")
        out = self.work / "one_pass"
        cfg = write_yaml(self.work / "one_pass.yaml", {
            "data": self.stream, "out": str(out), "train": self.shared, "saes": self.saes})
        run = self._psae("one_pass", "train", str(cfg))
        lm_tokens = stream_lm_tokens(out)
        runs = [{"name": "all", **run, "disk_mb": disk_mb(out), "lm_tokens": lm_tokens}]
        return way(run["seconds"], runs, self.sae_tokens, lm_tokens, run["seconds"])

    def separate_passes(self) -> dict[str, Any]:
        runs = []
        for entry in self.saes:
            name = entry["name"]
            self.say(f"separate pass: {name}")
            out = self.work / "separate" / name
            cfg = write_yaml(self.work / f"separate_{name}.yaml", {
                "data": self.stream, "out": str(out), "train": self.shared, "saes": [entry]})
            run = self._psae(f"separate_{name}", "train", str(cfg))
            runs.append({"name": name, **run, "disk_mb": disk_mb(out),
                         "lm_tokens": stream_lm_tokens(out)})
        seconds = sum(r["seconds"] for r in runs)
        return way(seconds, runs, self.sae_tokens, sum(r["lm_tokens"] for r in runs), seconds)

    def cache(self) -> dict[str, Any]:
        self.say(f"cache: extract {self.tokens:,} tokens")
        cache = self.work / "cache" / "activations"
        cfg = write_yaml(self.work / "extract.yaml", {
            "lm": {"model": self.model}, "text": TEXT,
            "extract": {"hook": self.hook, "out": str(cache), "max_tokens": self.tokens,
                        "batch_size": self.opts["windows_per_pass"],
                        "dtype": self.opts["cache_dtype"]}})
        extract = self._psae("extract", "extract", str(cfg))
        rows = cache_rows(cache)
        runs = [{"name": "extract", **extract, "disk_mb": disk_mb(cache), "lm_tokens": rows}]
        for entry in self.saes:
            name = entry["name"]
            self.say(f"cache: train {name}")
            out = self.work / "cache" / name
            cfg = write_yaml(self.work / f"cache_{name}.yaml", {
                "data": {"cache": str(cache)}, "out": str(out),
                "train": {**self.shared, **fields(entry)}})
            run = self._psae(f"cache_{name}", "train", str(cfg))
            runs.append({"name": name, **run, "disk_mb": disk_mb(out), "lm_tokens": 0})
        seconds = sum(r["seconds"] for r in runs)
        return {**way(seconds, runs, self.sae_tokens, rows, extract["seconds"]),
                "extract_seconds": extract["seconds"],
                "train_seconds": seconds - extract["seconds"], "cache_mb": runs[0]["disk_mb"]}


def way(seconds: float, runs: list[dict[str, Any]], sae_tokens: int, lm_tokens: int,
        lm_seconds: float) -> dict[str, Any]:
    """One way's totals: `lm_seconds` are those of the commands that ran the LM."""
    return {"seconds": seconds,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "disk_mb": sum(r["disk_mb"] for r in runs),
            "sae_tokens_per_s": sae_tokens / seconds,
            "lm_tokens": lm_tokens,
            "lm_tokens_per_s": lm_tokens / lm_seconds,
            "runs": runs}


def rss_bound(lm: dict[str, Any], train: dict[str, Any], baseline_mb: float,
              buffer_tokens: int, d: int, row_bytes: int, measured_mb: float) -> dict[str, Any]:
    """StreamConfig's stated memory, its terms measured apart where they can be.

    The LM probe's peak holds Python + torch (the baseline), the LM, its activations and one
    pass's rows; the training probe's holds the baseline, every SAE with its optimiser state
    and one batch; the mixing buffer is computed (allocated once, buffer_tokens × hooks × d ×
    bytes). A stream-state save serialises the buffer to bytes before writing them: one more
    buffer-sized copy for as long as the save lasts, which the docstring does not count."""
    buffer_mb = buffer_tokens * d * row_bytes / 2**20
    bound = lm["peak_rss_mb"] + train["peak_rss_mb"] - baseline_mb + buffer_mb
    return {"baseline_mb": baseline_mb, "lm_and_one_pass_mb": lm["peak_rss_mb"],
            "training_no_stream_mb": train["peak_rss_mb"], "buffer_mb": buffer_mb,
            "bound_mb": bound, "checkpoint_copy_mb": buffer_mb,
            "bound_with_checkpoint_copy_mb": bound + buffer_mb,
            "measured_one_pass_mb": measured_mb, "within_bound": measured_mb <= bound,
            "within_bound_with_checkpoint_copy": measured_mb <= bound + buffer_mb}


def run_child(mode: str, spec: dict[str, Any], result: Path, logs: Path,
              env: dict[str, str]) -> dict[str, Any]:
    """A probe's own record, with its process's wall seconds and peak RSS."""
    run = measured(child(mode, spec, result), logs / f"{mode}_probe.log", env)
    return {**json.loads(result.read_text()), "process_seconds": run["seconds"],
            "peak_rss_mb": run["peak_rss_mb"]}


# -- the probes (run as children of this script) ------------------------------------------
def probe_host() -> dict[str, Any]:
    import platform

    import torch

    import progressive_sae.cli  # noqa: F401  (what a psae process imports before its work)
    import progressive_sae.train.multi  # noqa: F401
    from progressive_sae.kernels.precision import fast_matmul_dtype

    return {"cpu_count": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": fast_matmul_dtype("cpu") == torch.bfloat16,
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version()}


def probe_lm(spec: dict[str, Any]) -> dict[str, Any]:
    from progressive_sae.lm.hooks import resolve_hook
    from progressive_sae.lm.stream import LMRows, StreamConfig, load_stream_lm

    cfg = StreamConfig.from_dict({"text": TEXT, "lm": {"model": spec["model"]},
                                  "hook": spec["hook"], "buffer_tokens": 0,
                                  "windows_per_pass": spec["windows_per_pass"]})
    started = time.perf_counter()
    lm = load_stream_lm(cfg)
    load_seconds = time.perf_counter() - started
    chunks = LMRows(lm, cfg, [resolve_hook(lm, spec["hook"]).name]).chunks(0)
    first = next(chunks)  # the first pass pays one-off costs (allocator, tokenizer)
    started, rows = time.perf_counter(), 0
    for _ in range(spec["passes"]):
        rows += next(chunks).shape[0]
    seconds = time.perf_counter() - started
    return {"d_model": lm.d_model, "load_seconds": load_seconds, "rows_per_pass": first.shape[0],
            "timed_passes": spec["passes"], "lm_tokens_per_s": rows / seconds}


def probe_train(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    from progressive_sae.data.feed import StreamFeed
    from progressive_sae.train.multi import MultiTrainer
    from progressive_sae.train.plan import plan_jobs

    d, batch = spec["d"], spec["shared"]["batch_size"]

    class RandomRows:
        """Fresh Gaussian rows, one batch per chunk: the SAE steps' cost without an LM."""

        width = d

        def chunks(self, start: int):
            index = start
            while True:
                yield torch.randn(batch, d, generator=torch.Generator().manual_seed(index))
                index += 1

        def describe(self) -> str:
            return "random rows"

    feed = StreamFeed(RandomRows(), [spec["hook"]], d, 0, batch)
    jobs = plan_jobs(spec["shared"], spec["saes"], None, [spec["hook"]])
    trainer = MultiTrainer(jobs, feed, spec["out"], progress=False)
    trainer.fit()
    return {"seconds": trainer.seconds, "saes": len(jobs)}


# -- output ------------------------------------------------------------------------------
def tables(result: dict[str, Any]) -> str:
    lines = []
    for model, r in result["lms"].items():
        s = r["settings"]
        lines += [f"**{model}** ({s['hook']}, d={s['d_model']}): {len(s['saes'])} SAEs × "
                  f"{s['tokens_per_sae']:,} tokens; separate / one pass = "
                  f"{r['ratio']['separate_over_one_pass']:.2f}×, cache / one pass = "
                  f"{r['ratio']['cache_over_one_pass']:.2f}×", "",
                  "| way | seconds | peak RSS MB | disk MB | SAE tokens/s | LM tokens/s |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name in WAYS:
            w = r[name]
            lines.append(f"| {name.replace('_', ' ')} | {w['seconds']:.1f} | "
                         f"{w['peak_rss_mb']:,.0f} | {w['disk_mb']:,.1f} | "
                         f"{w['sae_tokens_per_s']:,.0f} | {w['lm_tokens_per_s']:,.0f} |")
        lines.append("")
    return "\n".join(lines)


def verdicts(result: dict[str, Any]) -> str:
    lines = ["(--quick: settings far too small for these verdicts to mean anything)"
             ] if result["settings"]["quick"] else []
    for model, r in result["lms"].items():
        b = r["rss_bound_mb"]
        lines.append(
            f"{model}: one pass ≥ 3× faster than separate passes: "
            f"{'holds' if r['target_3x_holds'] else 'does NOT hold'} "
            f"({r['ratio']['separate_over_one_pass']:.2f}×; steady-state prediction "
            f"(n·L + S)/(L + S) = {r['predicted_separate_over_one_pass']:.2f}× with "
            f"L = {r['lm_seconds_per_step']:.2f} s, S = {r['saes_seconds_per_step']:.2f} s "
            f"per step)")
        lines.append(
            f"{model}: one-pass peak RSS {b['measured_one_pass_mb']:,.0f} MB against the "
            f"stated bound {b['bound_mb']:,.0f} MB (LM + one pass {b['lm_and_one_pass_mb']:,.0f}"
            f" + training {b['training_no_stream_mb']:,.0f} − baseline {b['baseline_mb']:,.0f}"
            f" + buffer {b['buffer_mb']:,.1f}): "
            f"{'within' if b['within_bound'] else 'ABOVE'}"
            + ("" if b["within_bound"] else
               f" ({'within' if b['within_bound_with_checkpoint_copy'] else 'above'} it with "
               f"the checkpoint's copy of the buffer, {b['bound_with_checkpoint_copy_mb']:,.0f}"
               " MB)"))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lm", help=f"comma-separated LMs to run, of {list(LMS)} (default: both; "
                   "with --quick: offline-default)")
    p.add_argument("--quick", action="store_true",
                   help="tiny settings: a smoke run of every path in about 1.5 minutes per LM "
                   "(its numbers mean nothing)")
    p.add_argument("--steps", type=int, help="steps per SAE for every LM (default: per LM, "
                   + ", ".join(f"{m} {v['steps']}" for m, v in LMS.items()) + ")")
    p.add_argument("--batch-size", type=int, help=f"tokens per step (default {FULL['batch_size']})")
    p.add_argument("--num-latents", help="comma-separated N (default 2048,4096,8192)")
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--buffer-batches", type=int, default=4,
                   help="mixing buffer, in batches (data.buffer_tokens = this × batch)")
    p.add_argument("--windows-per-pass", type=int,
                   help="LM windows per forward pass, streamed and extracted alike (default 16)")
    p.add_argument("--checkpoint-every", type=int, default=0,
                   help="steps between checkpoints (0: only the final one)")
    p.add_argument("--cache-dtype", default="float16", help="the cache's dtype (psae's default)")
    p.add_argument("--threads", type=int, help="OMP_NUM_THREADS of every command")
    p.add_argument("--work", type=Path, default=HERE / ".data" / "stream_speed",
                   help="scratch folder (emptied per LM)")
    p.add_argument("--out", type=Path, default=RESULT, help="result JSON")
    p.add_argument("--readme", action="store_true", help="print the tables of --out and exit")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        spec = json.loads(args.spec) if args.spec else {}
        probes = {"host": lambda: probe_host(), "lm": lambda: probe_lm(spec),
                  "train": lambda: probe_train(spec)}
        args.result.write_text(json.dumps(probes[args.child](), indent=2) + "\n")
        return
    if args.readme:
        if not args.out.is_file():
            raise SystemExit(f"{args.out}: no results yet (run the benchmark first)")
        print(tables(json.loads(args.out.read_text())))
        return
    if not TIME.is_file():
        raise SystemExit(f"{TIME} is missing: the benchmark reads each command's peak RSS "
                         "with GNU time (apt-get install time)")
    chosen = args.lm or ("offline-default" if args.quick else ",".join(LMS))
    models = [m.strip() for m in chosen.split(",") if m.strip()]
    unknown = sorted(set(models) - set(LMS))
    if unknown or not models:
        raise SystemExit(f"--lm {chosen!r}: expected a comma-separated subset of {list(LMS)}")
    base = QUICK if args.quick else FULL
    opts = {
        "batch_size": args.batch_size or base["batch_size"],
        "num_latents": ([int(n) for n in args.num_latents.split(",")] if args.num_latents
                        else base["num_latents"]),
        "windows_per_pass": args.windows_per_pass or base["windows_per_pass"],
        "k": args.k, "buffer_batches": args.buffer_batches,
        "checkpoint_every": args.checkpoint_every, "cache_dtype": args.cache_dtype,
        "stream_dtype_bytes": 4,  # data.dtype float32, StreamConfig's default
    }
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    started = time.perf_counter()
    load_start = os.getloadavg()
    args.work.mkdir(parents=True, exist_ok=True)
    host = run_child("host", {}, args.work / "host.json", args.work, env)
    host["baseline_rss_mb"] = host.pop("peak_rss_mb")
    host.pop("process_seconds")
    results = {}
    for model in models:
        steps = args.steps or (QUICK["steps"] if args.quick else LMS[model]["steps"])
        results[model] = bench_lm(model, LMS[model]["hook"], steps, opts,
                                  args.work / model, env, host["baseline_rss_mb"])
    result = {
        "notes": {
            "lm_tokens": "rows the LM computed: a stream's mixing-buffer fill and its last "
                         "pass's unread rows included; a cache's rows as written",
            "lm_tokens_per_s": "lm_tokens over the seconds of the commands that ran the LM "
                               "(a cache's: the extraction)",
            "sae_tokens_per_s": "SAEs × tokens per SAE over the way's seconds"},
        "settings": {**opts, "text": TEXT, "quick": args.quick,
                     "stream_dtype": "float32", "omp_num_threads": env.get("OMP_NUM_THREADS"),
                     "rss_method": "GNU time %M (per command)",
                     "timing": "wall-clock of each command, start-up and LM load included"},
        "host": host,
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "wall_seconds": time.perf_counter() - started,
        "lms": results,
    }
    from progressive_sae.atomic import write_json_atomic  # no torch: the parent stays small

    write_json_atomic(args.out, result)
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)
    print()
    print(tables(result))
    print(verdicts(result))
    print(f"wrote {args.out} ({result['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
