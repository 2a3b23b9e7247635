"""benchmarks/time_to_fvu.py: what it reads off the measured runs, and its refusals."""

from __future__ import annotations

import subprocess
import sys

from tests.benchmarks import BENCHMARKS, benchmark_module


def load():
    return benchmark_module("time_to_fvu")


def test_time_to_a_target_is_the_fewest_seconds_of_a_run_that_reached_it():
    time_to = load().time_to
    points = [
        {"library": "ours", "fvu": 0.30, "train_s": 10.0},
        {"library": "ours", "fvu": 0.18, "train_s": 20.0},
        {"library": "ours", "fvu": 0.12, "train_s": 40.0},
        {"library": "sparsify", "fvu": 0.19, "train_s": 30.0},
        {"library": "sparsify", "fvu": 0.14, "train_s": 60.0},
    ]
    assert time_to(points, 0.2) == {"ours": 20.0, "sparsify": 30.0}
    assert time_to(points, 0.13) == {"ours": 40.0, "sparsify": None}
    assert time_to(points, 0.5) == {"ours": 10.0, "sparsify": 30.0}


def test_bad_lengths_and_libraries_are_refused_in_one_line():
    for args, expected in ((["--steps", "30,x"], "--steps '30,x'"),
                           (["--only", "ours,saelens"], "--only 'ours,saelens'")):
        done = subprocess.run([sys.executable, str(BENCHMARKS / "time_to_fvu.py"), *args],
                              capture_output=True, text=True)
        assert done.returncode == 2
        assert expected in done.stderr.strip().splitlines()[-1]
