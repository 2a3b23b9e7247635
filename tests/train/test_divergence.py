"""A diverging run stops at once, keeps its last finite checkpoint and resumes with a lower lr."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from progressive_sae.cli import main
from progressive_sae.data.synthetic import SyntheticActivations, SyntheticConfig
from progressive_sae.sae import load_sae
from progressive_sae.sae.io import read_tensors
from progressive_sae.train import trainer as trainer_module
from progressive_sae.train.checkpoint import latest_checkpoint


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-standard JSON literal {name}")


def _strict_json(text: str):
    return json.loads(text, parse_constant=_reject_constant)


def _assert_all_files_valid(run: Path) -> None:
    """Every JSON parses strictly; every tensor in every safetensors file is finite."""
    for file in run.rglob("*"):
        if file.suffix == ".json":
            _strict_json(file.read_text())
        elif file.suffix == ".jsonl":
            for line in file.read_text().splitlines():
                _strict_json(line)
        elif file.suffix == ".safetensors":
            for name, tensor in read_tensors(file).items():
                if tensor.is_floating_point():
                    assert torch.isfinite(tensor).all(), f"{file}: {name} is not finite"


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    source = SyntheticActivations(SyntheticConfig(d_in=32, num_features=64, mean_active=4,
                                                  num_rows=40_000))
    path = tmp_path_factory.mktemp("div") / "acts.npy"
    np.save(path, source.rows(0, 40_000).numpy())
    return path


def _error_line(err: str) -> str:
    """The CLI's error line (the progress bar shares stderr)."""
    (line,) = [part for part in err.replace("\r", "\n").splitlines() if "psae: error:" in part]
    return line[line.index("psae: error:"):]


def test_lr_1e9_stops_at_once_with_exit_2_and_writes_nothing_non_finite(
    data_file: Path, tmp_path: Path, capsys
):
    run = tmp_path / "run"
    args = ["train", "--data", str(data_file), "--out", str(run), "--num-latents", "64",
            "--k", "4", "--batch-size", "256", "--total-tokens", str(256 * 40),
            "--checkpoint-every", "1", "--lr", "1e9"]
    assert main(args) == 2
    line = _error_line(capsys.readouterr().err)
    assert "diverged at step" in line and "learning rate" in line and "lower" in line, line
    step = int(line.split("diverged at step ")[1].split(":")[0])
    assert step < 40
    assert not (run / "sae").exists()  # no final SAE from a diverged run
    _assert_all_files_valid(run)


def test_late_divergence_keeps_last_finite_checkpoint_and_resumes_with_lower_lr(
    data_file: Path, tmp_path: Path, capsys, monkeypatch
):
    """A loss that turns Inf at step ≥ 10 while the rate is ≥ 1 (real training diverges at an
    unpredictable step; this pins it, so checkpoint rotation around it is exercised)."""
    now = {}
    real_rate, real_loss = trainer_module.learning_rate, trainer_module.sae_loss

    def rate(step, *args):
        now["step"], now["lr"] = step, real_rate(step, *args)
        return now["lr"]

    def unstable_loss(*args, **kwargs):
        parts = real_loss(*args, **kwargs)
        if now["step"] >= 10 and now["lr"] >= 1:
            return parts._replace(loss=parts.loss * float("inf"))
        return parts

    monkeypatch.setattr(trainer_module, "learning_rate", rate)
    monkeypatch.setattr(trainer_module, "sae_loss", unstable_loss)
    run = tmp_path / "run"
    common = ["train", "--data", str(data_file), "--out", str(run), "--num-latents", "64",
              "--k", "4", "--batch-size", "256", "--total-tokens", str(256 * 40),
              "--checkpoint-every", "4"]  # keep_checkpoints defaults to 2
    assert main(common + ["--lr", "5"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "diverged at step 10: the loss is not finite" in line, line
    kept = latest_checkpoint(run)
    assert kept is not None and kept.name == "step_00000008" and str(kept) in line
    assert sorted(p.name for p in kept.parent.glob("step_*")) == ["step_00000004",
                                                                  "step_00000008"]
    assert not (run / "sae").exists()
    _assert_all_files_valid(run)
    assert torch.isfinite(load_sae(kept).W_dec).all()  # intact and loadable

    assert main(common + ["--resume", "--lr", "0.5"]) == 0
    printed = _strict_json(capsys.readouterr().out)
    assert printed["steps"] == 40
    final = load_sae(run / "sae")
    assert all(torch.isfinite(t).all() for t in final.state_dict().values())
    _assert_all_files_valid(run)


def test_resume_still_refuses_other_changed_settings(data_file: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    common = ["train", "--data", str(data_file), "--out", str(run), "--num-latents", "64",
              "--batch-size", "256", "--total-tokens", str(256 * 8), "--checkpoint-every", "4"]
    assert main(common + ["--k", "4", "--total-tokens", str(256 * 4)]) == 0
    capsys.readouterr()
    assert main(common + ["--k", "8", "--resume"]) == 2
    assert "k=4" in capsys.readouterr().err
