"""benchmarks/memory_breakdown.py on a tiny run: every figure present and consistent."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "memory_breakdown.py"


def test_a_tiny_run_accounts_for_the_heap(tmp_path):
    out = tmp_path / "m.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "3", "--num-latents", "256", "--batch", "256",
         "--data-dir", str(tmp_path / "data"), "--out", str(out)],
        capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(out.read_text())
    assert len(r["steps"]) == 3 and r["settings"]["num_latents"] == 256
    assert r["heap_peak_in_use_mb"] >= r["heap_in_use_between_steps_mb"] > 0
    assert r["step_working_set_mb"] == r["heap_peak_in_use_mb"] - r["heap_in_use_between_steps_mb"]
    assert r["heap_extent_mb"] >= r["heap_peak_in_use_mb"]
    before = r["process_before_training_rss_mb"]
    assert r["peak_rss_mb"] >= before > r["process_before_training_heap_mb"]
    assert all(s["ms"] > 0 and s["hwm_mb"] >= s["rss_mb"] for s in r["steps"])
    assert "peak_rss_mb" in done.stdout


def test_bad_arguments_are_refused(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--steps", "1", "--out",
                           str(tmp_path / "m.json")], capture_output=True, text=True)
    assert done.returncode == 2 and "--steps 1" in done.stderr
    assert not (tmp_path / "m.json").exists()
