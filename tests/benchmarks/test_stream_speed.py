"""benchmarks/stream_speed.py --quick: every way runs and the JSON has its shape (no timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "stream_speed.py"
WAYS = ("one_pass", "separate_passes", "cache")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_an_unknown_lm_is_refused_before_anything_runs(tmp_path):
    done = run("--lm", "gpt-9", "--out", str(tmp_path / "r.json"), "--work", str(tmp_path / "w"))
    assert done.returncode != 0
    assert "--lm 'gpt-9'" in done.stderr
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "w").exists()


@pytest.mark.skipif(not Path("/usr/bin/time").is_file(), reason="needs GNU time")
def test_quick_run_writes_every_way_of_every_sae(tmp_path):
    out, work = tmp_path / "stream_speed.json", tmp_path / "work"
    done = run("--quick", "--lm", "offline-default", "--out", str(out), "--work", str(work))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert not work.exists()  # scratch removed without --keep
    assert result["settings"]["quick"] is True
    assert {"cpu_count", "native_bf16", "torch_threads", "baseline_rss_mb"} <= set(result["host"])
    assert list(result["lms"]) == ["offline-default"]
    lm = result["lms"]["offline-default"]
    s = lm["settings"]
    assert (s["hook"], s["d_model"]) == ("layers.2", 256)
    saes = s["saes"]
    n = result["settings"]["num_latents"][0]
    assert [e["name"] for e in saes] == [f"topk-N{n}-k32", f"topk-N{n}-k32-matryoshka"]
    assert saes[1]["granularities"] == [n // 4, n // 2, n]
    tokens = s["tokens_per_sae"]
    for name in WAYS:
        way = lm[name]
        assert lm[f"{name}_seconds"] == way["seconds"] > 0
        assert way["peak_rss_mb"] > 0 and way["disk_mb"] > 0
        assert way["sae_tokens_per_s"] == pytest.approx(len(saes) * tokens / way["seconds"])
        assert way["lm_tokens"] >= tokens  # every way's LM made at least the rows trained on
    assert [r["name"] for r in lm["separate_passes"]["runs"]] == [e["name"] for e in saes]
    assert [r["name"] for r in lm["cache"]["runs"]] == ["extract"] + [e["name"] for e in saes]
    assert lm["cache"]["lm_tokens"] == tokens  # the cache holds exactly max_tokens rows
    # each separate pass streams the same text the one pass streamed
    assert {r["lm_tokens"] for r in lm["separate_passes"]["runs"]} == {lm["one_pass"]["lm_tokens"]}
    assert lm["separate_passes_seconds"] == pytest.approx(
        sum(r["seconds"] for r in lm["separate_passes"]["runs"]))
    assert set(lm["ratio"]) == {"separate_over_one_pass", "cache_over_one_pass"}
    assert isinstance(lm["target_3x_holds"], bool)
    bound = lm["rss_bound_mb"]
    assert bound["buffer_mb"] == pytest.approx(s["buffer_tokens"] * 256 * 4 / 2**20)
    assert bound["bound_mb"] == pytest.approx(
        bound["lm_and_one_pass_mb"] + bound["training_no_stream_mb"] - bound["baseline_mb"]
        + bound["buffer_mb"])
    assert bound["measured_one_pass_mb"] == lm["one_pass"]["peak_rss_mb"]
    assert "| one pass |" in done.stdout
    assert "offline-default: one pass ≥ 3× faster than separate passes:" in done.stdout

    table = run("--readme", "--out", str(out))
    assert table.returncode == 0
    assert table.stdout.count("| cache |") == 1 and "SAE tokens/s" in table.stdout
