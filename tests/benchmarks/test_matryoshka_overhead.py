"""benchmarks/matryoshka_overhead.py: both trainers step alternately on the same rows."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.benchmarks import BENCHMARKS, benchmark_module


def load():
    return benchmark_module("matryoshka_overhead")


def test_both_trainers_take_every_batch_and_the_ratio_skips_the_warm_up(tmp_path):
    bench = load()
    rows = tmp_path / "rows.npy"
    np.save(rows, np.random.default_rng(0).standard_normal((6 * 32, 16)).astype(np.float32))
    times = bench.alternate(rows, steps=6, num_latents=64, k=4, batch=32)
    assert set(times) == {"topk", "matryoshka"}
    assert all(len(t) == 6 and min(t) > 0 for t in times.values())

    made_up = {"topk": [1000.0] * bench.WARMUP + [10.0, 20.0, 30.0],
               "matryoshka": [1.0] * bench.WARMUP + [11.0, 22.0, 36.0]}
    summary = bench.summarise(made_up)
    assert summary["topk_step_ms"] == 20.0 and summary["matryoshka_step_ms"] == 22.0
    assert summary["ratio_of_medians"] == pytest.approx(1.1)
    assert summary["median_step_ratio"] == pytest.approx(1.1)


def test_too_few_rows_are_refused_in_one_line(tmp_path):
    rows = tmp_path / "rows.npy"
    np.save(rows, np.zeros((100, 16), dtype=np.float32))
    done = subprocess.run([sys.executable, str(BENCHMARKS / "matryoshka_overhead.py"),
                           "--train", str(rows), "--steps", "5", "--out",
                           str(tmp_path / "out.json")], capture_output=True, text=True)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith(f"--train {rows}: 100 rows")
