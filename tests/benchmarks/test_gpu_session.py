"""benchmarks/gpu_session.sh: where no GPU is at hand it stops at once, in one line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_session.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_without_a_gpu_it_stops_before_installing_or_running_anything(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), "train"], capture_output=True, text=True,
                          env={**os.environ, "OUT": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.strip() == "gpu_session.sh: python3 here has no torch that sees a GPU"
    assert list(tmp_path.iterdir()) == []
