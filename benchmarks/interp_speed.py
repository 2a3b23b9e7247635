"""Interpretability speed on this CPU: latent records, and latents explained and scored per
minute with the offline LLM (SmolLM2-135M) and with the look-up-table baseline.

    python benchmarks/interp_speed.py [--tokens 60000] [--latents-per-quantile 1]
                                      [--train 8] [--test 4]

Extracts activations of the shipped offline LM (block 2, CPython's docs), trains a small
Matryoshka SAE on them (N=2048, k=32, the demo's shape), then times: collecting latent
records (tokens/s); `interpret` with the offline LLM on a few latents of the inner (< 256)
and outer buckets, at the demo's example counts (latents per minute, LLM calls per
latent); the same run again into a fresh folder with the same response cache (its hit
rate must be 100%: no model call); and the baseline. Work files go to
benchmarks/.data/interp/. Prints a table and writes benchmarks/results/interp_speed.json.
Timings are noisy on a shared machine: run it on an otherwise idle one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch

from progressive_sae.data.cache import CachedActivations
from progressive_sae.interp.clients import make_client
from progressive_sae.interp.collect import collect_records
from progressive_sae.interp.config import InterpConfig
from progressive_sae.interp.pipeline import interpret
from progressive_sae.lm import load_lm
from progressive_sae.lm.extract import extract
from progressive_sae.lm.text import TextConfig
from progressive_sae.sae import load_sae, save_sae
from progressive_sae.train import train

HERE = Path(__file__).resolve().parent
WORK = HERE / ".data" / "interp"
N, K, D, GRANULARITIES = 2048, 32, 256, [256, 1024, 2048]


def cache_and_sae(tokens: int) -> tuple[Path, Path]:
    cache, sae_dir = WORK / f"cache_{tokens}", WORK / f"sae_{tokens}"
    if not (cache / "manifest.json").is_file():
        lm = load_lm("offline-default")
        extract(lm, TextConfig(source="cpython-docs", ctx=256), "layers.2", cache, tokens,
                dtype="float32", progress=False)
    if not (sae_dir / "cfg.json").is_file():
        source = CachedActivations(cache, shuffle_buffer=8192)
        sae, _ = train(source, num_latents=N, k=K, granularities=GRANULARITIES,
                       batch_size=1024, total_tokens=min(tokens, len(source)) * 3,
                       log_every=1000, progress=False)
        save_sae(sae, sae_dir, overwrite=True)
    return cache, sae_dir


def config(args: argparse.Namespace) -> InterpConfig:
    return InterpConfig.from_dict({
        "sampling": {"quantiles": 2, "latents_per_quantile": args.latents_per_quantile,
                     "train_examples": args.train, "test_examples": args.test},
        "granularities": [GRANULARITIES[0]], "baseline": False, "control": False})


def run_interp(sae, cache: Path, client, cfg: InterpConfig, out: Path) -> tuple[dict, float]:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = interpret({"matryoshka": sae}, cache, client, cfg, out=out)
    return result.to_dict(), time.perf_counter() - start


def scored_latents(out: Path) -> list[dict]:
    rows = []
    for file in sorted((out / "scores").glob("*.jsonl")):
        rows += [json.loads(line) for line in file.read_text().splitlines()]
    return [r for r in rows if r["skipped"] is None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=60_000)
    parser.add_argument("--latents-per-quantile", type=int, default=1)
    parser.add_argument("--train", type=int, default=8, help="train windows per latent")
    parser.add_argument("--test", type=int, default=4,
                        help="test (and as many non-activating) windows per latent")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's); on a machine shared with "
                             "other jobs 1 was 5x faster than 2 here")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # the benchmark's own process; the library never seeds globally
    cache, sae_dir = cache_and_sae(args.tokens)
    sae = load_sae(sae_dir)
    source = CachedActivations(cache, shuffle_buffer=0)

    start = time.perf_counter()
    cfg = config(args)
    collect_records(sae, source, cfg.records)
    records_s = time.perf_counter() - start

    start = time.perf_counter()
    llm_cache = WORK / "llm_cache"
    shutil.rmtree(llm_cache, ignore_errors=True)
    client = make_client("offline-default", cache_dir=llm_cache)
    load_s = time.perf_counter() - start
    first, first_s = run_interp(sae, cache, client, cfg, WORK / "run_llm")
    llm_rows = scored_latents(WORK / "run_llm")
    stats_first = dict(client.stats.to_dict())
    second, second_s = run_interp(sae, cache, client, cfg, WORK / "run_llm_again")
    stats_second = {k: v - stats_first[k] for k, v in client.stats.to_dict().items()}
    requests = stats_second["calls"] + stats_second["cache_hits"]

    base, base_s = run_interp(sae, cache, "baseline", cfg, WORK / "run_baseline")
    base_rows = scored_latents(WORK / "run_baseline")

    records_time = first["timing"]["records"]
    llm_score_s = first["timing"]["scoring " + first["interpreters"][0]]
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average_at_end": os.getloadavg()},
        "setup": {"tokens": len(source), "num_latents": N, "k": K, "d_in": D,
                  "granularities": GRANULARITIES, "window": cfg.records.window,
                  "train_examples": cfg.sampling.train_examples,
                  "test_examples": cfg.sampling.test_examples,
                  "methods": cfg.methods, "llm": first["interpreters"][0]},
        "records_tokens_per_s": len(source) / records_s,
        "llm_load_s": load_s,
        "llm_latents_scored": len(llm_rows),
        "llm_seconds_per_latent": llm_score_s / max(1, len(llm_rows)),
        "llm_latents_per_minute": 60 * len(llm_rows) / llm_score_s if llm_score_s else None,
        "llm_calls_per_latent": (sum(r["llm_calls"] for r in llm_rows) / len(llm_rows)
                                 if llm_rows else None),
        "llm_run_s": first_s, "llm_run_records_s": records_time,
        "client_stats_first_run": stats_first,
        "second_run": {"seconds": second_s, "client_stats": stats_second,
                       "cache_hit_rate": (stats_second["cache_hits"] / requests
                                          if requests else None)},
        "baseline_latents_scored": len(base_rows),
        "baseline_seconds_per_latent": (base["timing"]["scoring baseline"]
                                        / max(1, len(base_rows))),
        "baseline_run_s": base_s,
        "summary_llm": [s for s in first["summary"] if s["quantile"] is None],
        "summary_baseline": [s for s in base["summary"] if s["quantile"] is None],
    }
    out = HERE / "results" / "interp_speed.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"records: {result['records_tokens_per_s']:,.0f} tokens/s over {len(source):,} tokens")
    print(f"offline LLM load: {load_s:.1f} s; {len(llm_rows)} latents scored in "
          f"{llm_score_s:.1f} s = {result['llm_seconds_per_latent']:.2f} s/latent, "
          f"{result['llm_latents_per_minute']:.1f} latents/min, "
          f"{result['llm_calls_per_latent']:.1f} LLM calls/latent")
    print(f"second run: {second_s:.1f} s, cache hit rate "
          f"{result['second_run']['cache_hit_rate']:.0%} ({stats_second})")
    print(f"baseline: {result['baseline_seconds_per_latent']:.3f} s/latent")
    for s in result["summary_llm"] + result["summary_baseline"]:
        mean = "—" if s["mean"] is None else f"{s['mean']:.3f}"
        print(f"  {s['interpreter']:<28} {s['bucket']:<14} {s['method']:<10} {mean} "
              f"(n={s['scored']}, undefined {s['undefined']}, skipped {s['skipped']})")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
