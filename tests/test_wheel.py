"""The built wheel, installed into a fresh virtual environment, runs the shipped demo config
(`psae run demo`) from a folder that holds no configs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "extract.max_tokens=6144", "--set", "text.ctx=64",
        "--set", "train={batch_size: 512, total_tokens: 4096, checkpoint_every: 0}",
        "--set", "grid={num_latents: 64, k: 4, baseline_sizes: [64], k_grid: [], "
                 "sampled_granularities: 0, permute_by: [mean_sq]}",
        "--set", "eval={heldout_tokens: 6000, rank_rows: 2000, rsa_rows: 100, lm_windows: 0, "
                 "similarity_latents: 64}",
        "--set", "interp=null", "--set", "evals=null"]
"""The demo grid at a size that runs in seconds (the wheel's contents are what is tested)."""


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_the_wheel_runs_the_shipped_demo_config_from_any_folder(tmp_path):
    source = tmp_path / "source"  # built from a copy: the checkout gets no build/ folder
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", tmp_path / "dist", source)
    wheel = next((tmp_path / "dist").glob("progressive_sae-*.whl"))

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel)
    # The dependencies (torch, transformers, …) come from this environment's site-packages,
    # added as a plain path: its editable install of the checkout is not picked up.
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                .strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = _run(python, "-c", "import progressive_sae; print(progressive_sae.__file__)")
    assert Path(where.strip()).is_relative_to(venv)

    work = tmp_path / "elsewhere"
    work.mkdir()
    _run(venv / "bin" / "psae", "run", "demo", "--out", "demo-out", "--quiet", *TINY, cwd=work)
    results = json.loads((work / "demo-out" / "results.json").read_text(), parse_constant=float)
    assert results["config"]["grid"]["num_latents"] == 64
    assert (work / "demo-out" / "report.md").is_file()
