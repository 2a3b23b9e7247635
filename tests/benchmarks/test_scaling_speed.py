"""benchmarks/scaling_speed.py --quick: every point is measured and the JSON has its shape
(no timings are checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scaling_speed.py"
POINT_KEYS = {
    "num_latents", "d", "ours_step_ms", "floor_ms", "sparsify_step_ms", "peak_rss_mb",
    "ours_over_floor", "sparsify_peak_rss_mb", "ours_fvu", "sparsify_fvu", "floor_dtype",
    "floor_ms_by_dtype", "predicted_memory_mb", "memory_over_predicted", "memory_terms_mb",
    "peak_memory_mb", "ours_step_ms_per_run",
}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_an_unknown_point_is_refused_before_anything_runs(tmp_path):
    done = run("--quick", "--only-points", "256x64,999x64", "--out", str(tmp_path / "r.json"),
               "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2
    assert "--only-points '256x64,999x64'" in done.stderr and "256x64" in done.stderr
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "data").exists()


def test_readme_needs_a_result(tmp_path):
    done = run("--readme", "--out", str(tmp_path / "missing.json"))
    assert done.returncode == 2 and "does not exist" in done.stderr


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scaling")
    out = tmp / "scaling.json"
    done = run("--quick", "--skip-peers", "--out", str(out), "--data-dir", str(tmp / "data"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out, done.stdout


def test_quick_run_writes_every_point_and_the_plot(quick):
    out, stdout = quick
    result = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 0
    s = result["settings"]
    assert s["quick"] is True and s["peers"] is False and s["repeats_of_ours"] == 1
    assert s["points"] == ["256x64", "512x64", "1024x64", "256x192"]
    assert "fp32" in s["floor_dtypes"]
    assert {"cpu_model", "cpu_count", "threads", "torch", "native_half_dtypes",
            "loadavg_start", "loadavg_end"} <= set(result["machine"])
    assert result["memory_kind"] == "rss" and result["baseline_rss_mb"] > 0
    points = result["points"]
    assert [(p["num_latents"], p["d"]) for p in points] == [
        (256, 64), (512, 64), (1024, 64), (256, 192)]
    for p in points:
        assert POINT_KEYS <= set(p)
        assert p["sparsify_step_ms"] is None and p["sparsify_fvu"] is None
        assert len(p["ours_step_ms_per_run"]) == 1
        assert p["floor_ms"] == min(p["floor_ms_by_dtype"].values())
        assert p["floor_ms_by_dtype"][p["floor_dtype"]] == p["floor_ms"]
        assert p["ours_over_floor"] == pytest.approx(p["ours_step_ms"] / p["floor_ms"])
        assert p["peak_memory_mb"] == p["peak_rss_mb"]
        terms = p["memory_terms_mb"]
        assert p["predicted_memory_mb"] == pytest.approx(sum(terms.values()))
        assert terms["baseline_mb"] == result["baseline_rss_mb"]
        n, d = p["num_latents"], p["d"]
        assert terms["params_and_adam_mb"] == pytest.approx(3 * (2 * n * d + n + d) * 4 / 2**20)
        assert terms["gradients_mb"] == pytest.approx(2 * n * d * 4 / 2**20)
        # the main runs have AuxK's real dead window; one run per point has the short one
        assert p["dead_tokens"] == 10_000_000 and p["dead_fraction"] == 0
        assert p["ours_default_window_dead_tokens"] < 10_000_000
        assert p["ours_default_window_step_ms"] > 0
        assert 0 <= p["ours_default_window_dead_fraction"] <= 1
        assert 0 < p["ours_fvu"] < 2
    # rows(d) is one measurement per width, shared by that width's points
    rows = {p["d"]: p["memory_terms_mb"]["rows_mb"] for p in points}
    assert all(p["memory_terms_mb"]["rows_mb"] == rows[p["d"]] for p in points)
    c = result["checks"]
    assert c["base_d"] == 64 and c["beats_sparsify_everywhere"] is None
    assert isinstance(c["step_over_floor_flat"], bool)
    assert isinstance(c["memory_within_tolerance"], bool)
    assert "| 1,024 | 64 |" in stdout and "measured / formula" in stdout


def test_readme_prints_only_the_table(quick):
    out, _ = quick
    table = run("--readme", "--out", str(out))
    assert table.returncode == 0
    lines = table.stdout.strip().splitlines()
    assert lines[0].startswith("| N | d | ours ms/step |") and len(lines) == 2 + 4
