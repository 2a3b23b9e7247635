"""Activation extraction and cache read speed, against the training step's appetite.

    python benchmarks/data_speed.py [--tokens 262144] [--model offline-default]

Extracts activations of the offline default LM (block 2 residual stream, CPython docs) into a
fresh cache, then reads the cache through the trainer's own loader (`iterate_batches` over a
shuffled `CachedActivations`), and compares both with the TopK step's tokens/s recorded by
benchmarks/train_speed.py. Prints a table and writes benchmarks/results/data_speed.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from progressive_sae.data.batching import iterate_batches
from progressive_sae.data.cache import CachedActivations
from progressive_sae.lm import load_lm
from progressive_sae.lm.extract import extract
from progressive_sae.lm.text import OFFLINE_CORPUS, TextConfig

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="offline-default")
    parser.add_argument("--hook", default="layers.2")
    parser.add_argument("--tokens", type=int, default=262_144)
    parser.add_argument("--batch-size", type=int, default=4096, help="trainer batch (tokens)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    scratch = HERE / ".data" / "data_speed_cache"
    shutil.rmtree(scratch, ignore_errors=True)
    lm = load_lm(args.model)
    text = TextConfig(source=OFFLINE_CORPUS, ctx=256, part="train")
    t0 = time.perf_counter()
    extract(lm, text, hook=args.hook, out_dir=scratch, max_tokens=args.tokens,
            dtype="float16", progress=False)
    extract_s = time.perf_counter() - t0
    cache = CachedActivations(scratch)
    rows = len(cache)

    batches = iterate_batches(cache, args.batch_size)
    steps = max(1, rows // args.batch_size)
    next(batches)  # first touch verifies checksums; time the steady state
    t0 = time.perf_counter()
    for _ in range(steps):
        next(batches)
    read_s = time.perf_counter() - t0

    train_file = HERE / "results" / "train_speed.json"
    train_tps = None
    if train_file.exists():
        train_tps = json.loads(train_file.read_text())["topk_tokens_per_s"]
    result = {
        "model": args.model, "hook": args.hook, "d_model": cache.d_in, "rows": rows,
        "extract_tokens_per_s": rows / extract_s,
        "cache_read_tokens_per_s": steps * args.batch_size / read_s,
        "train_topk_tokens_per_s": train_tps,
    }
    if train_tps:
        result["read_over_train"] = result["cache_read_tokens_per_s"] / train_tps
        result["extract_over_train"] = result["extract_tokens_per_s"] / train_tps
    print(f"{'measure':<38}{'tokens/s':>14}")
    print(f"{'extraction (' + args.model + ', ' + args.hook + ')':<38}"
          f"{result['extract_tokens_per_s']:>14,.0f}")
    print(f"{'cache read through the trainer loader':<38}"
          f"{result['cache_read_tokens_per_s']:>14,.0f}")
    if train_tps:
        print(f"{'TopK training step (train_speed.json)':<38}{train_tps:>14,.0f}")
        print(f"read / train = {result['read_over_train']:.1f}x, "
              f"extract / train = {result['extract_over_train']:.2f}x")
    out = HERE / "results" / "data_speed.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
