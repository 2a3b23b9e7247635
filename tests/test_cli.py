"""`psae` happy paths: train from a YAML config (flags override it), info, permute, truncate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from progressive_sae import load_sae
from progressive_sae.cli import main

D_IN, N, K = 16, 64, 4
CONFIG = f"""\
data:
  synthetic: {{d_in: {D_IN}, num_features: 48, mean_active: 3, num_rows: 4096, seed: 1}}
out: run
train:
  num_latents: {N}
  k: {K}
  batch_size: 64
  total_tokens: 640
  checkpoint_every: 4
  log_every: 2
"""


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(CONFIG)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "heldout.npy", rng.standard_normal((512, D_IN)).astype(np.float32))
    return tmp_path


def psae(capsys, *argv: str) -> str:
    """Run `psae argv` in process; return its stdout after checking it succeeded."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err
    return out


@pytest.fixture
def trained(ws, capsys) -> Path:
    psae(capsys, "train", "config.yaml")
    return ws / "run"


def test_train_from_yaml_writes_sae_metrics_and_checkpoints(trained, capsys):
    run = trained
    sae = load_sae(run / "sae")
    assert (sae.num_latents, sae.d_in, sae.cfg.k) == (N, D_IN, K)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10]
    assert all(np.isfinite(r["fvu"]) and r["l0"] <= K for r in records)
    checkpoints = run / "checkpoints"
    assert (checkpoints / "LATEST").read_text() == "step_00000010"
    assert sorted(p.name for p in checkpoints.glob("step_*")) == ["step_00000008", "step_00000010"]
    assert load_sae(checkpoints / "step_00000010").num_latents == N
    info = json.loads((run / "train_config.json").read_text())
    assert info["d_in"] == D_IN and info["train_config"]["total_tokens"] == 640


def test_train_prints_its_result_as_json(ws, capsys):
    result = json.loads(psae(capsys, "train", "config.yaml", "--out", "other"))
    assert result["steps"] == 10 and result["tokens"] == 640
    assert Path(result["sae_path"]) == Path("other") / "sae"
    assert not (ws / "run").exists()


def test_flags_override_the_yaml(ws, capsys):
    psae(capsys, "train", "config.yaml", "--out", "run_k8", "--k", "8", "--total-tokens", "320",
         "--granularities", "16,32", "--set", "lr=1e-3", "--set", "log_every=5")
    sae = load_sae(ws / "run_k8" / "sae")
    assert sae.cfg.k == 8 and sae.cfg.granularities == [16, 32, N]
    cfg = json.loads((ws / "run_k8" / "train_config.json").read_text())["train_config"]
    assert cfg["k"] == 8 and cfg["total_tokens"] == 320 and cfg["batch_size"] == 64
    assert cfg["lr"] == pytest.approx(1e-3) and cfg["log_every"] == 5
    steps = [json.loads(line)["step"] for line in (ws / "run_k8" / "metrics.jsonl").open()]
    assert steps == [5]


def test_data_flag_overrides_the_yaml(ws, capsys):
    psae(capsys, "train", "config.yaml", "--data", "heldout.npy", "--out", "npy_run",
         "--total-tokens", "128")
    assert load_sae(ws / "npy_run" / "sae").d_in == D_IN


def test_info_prints_json(trained, capsys):
    info = json.loads(psae(capsys, "info", str(trained / "sae")))
    assert info["num_latents"] == N and info["d_in"] == D_IN and info["k"] == K
    assert info["architecture"] == "TopKSAE" and info["parameters"] == 2 * N * D_IN + N + D_IN
    assert info["bytes_on_disk"] > 4 * info["parameters"]


def test_permute_then_truncate_give_loadable_saes_of_the_right_size(trained, ws, capsys):
    out = psae(capsys, "permute", str(trained / "sae"), "--data", "heldout.npy", "--by",
               "frequency", "--out", "perm")
    assert "perm" in out
    original, permuted = load_sae(trained / "sae"), load_sae(ws / "perm")
    assert permuted.num_latents == N and permuted.cfg.k == K
    assert permuted.cfg.metadata["permuted_by"] == "frequency"
    assert torch.equal(torch.sort(original.W_dec.flatten()).values,
                       torch.sort(permuted.W_dec.flatten()).values)

    psae(capsys, "truncate", "perm", "--granularity", "32", "--out", "small")
    small = load_sae(ws / "small")
    assert (small.num_latents, small.d_in, small.cfg.k) == (32, D_IN, round(K * 32 / N))
    assert torch.equal(small.W_dec, permuted.W_dec[:32])

    psae(capsys, "truncate", "perm", "-g", "16", "--k", "3", "--out", "small_k3")
    assert (load_sae(ws / "small_k3").num_latents, load_sae(ws / "small_k3").cfg.k) == (16, 3)
    info = json.loads(psae(capsys, "info", "small_k3"))
    assert info["num_latents"] == 16 and info["k"] == 3


def test_permute_reads_data_from_a_yaml_config(trained, ws, capsys):
    psae(capsys, "permute", str(trained / "sae"), "--data", "config.yaml", "--max-rows", "256",
         "--out", "perm")
    assert load_sae(ws / "perm").cfg.metadata["permuted_by"] == "mean_sq"


def test_the_installed_entry_point_exits_2_with_one_line(ws):
    """Through a real process: the exit status reaches the shell and no traceback is shown."""
    proc = subprocess.run(
        [sys.executable, "-m", "progressive_sae.cli", "info", "nowhere"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == ["psae: error: nowhere does not exist"]
