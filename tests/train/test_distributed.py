"""Two gloo processes under torchrun match one process on the same global batch."""

import os
import socket
import subprocess
import sys

import numpy as np
import torch

from progressive_sae import TrainConfig, Trainer, load_sae


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(synthetic, tmp_path):
    data = tmp_path / "acts.npy"
    np.save(data, synthetic.rows(0, 256 * 12).numpy())
    settings = dict(num_latents=64, k=4, batch_size=256, total_tokens=256 * 12,
                    granularities=[16, 32], dead_tokens=512, lr_warmup_steps=2,
                    matmul_dtype="float32")  # the subprocesses are not under conftest's pin
    single = Trainer(TrainConfig(**settings), str(data), run_dir=tmp_path / "one", progress=False)
    single.fit()

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "progressive_sae.cli", "train", "--data", str(data),
           "--out", str(tmp_path / "two"), "--num-latents", "64", "--k", "4",
           "--batch-size", "256", "--total-tokens", str(256 * 12),
           "--granularities", "16,32", "--set", "dead_tokens=512", "--set", "lr_warmup_steps=2",
           "--set", "matmul_dtype=float32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    two = load_sae(tmp_path / "two" / "sae")
    for name, tensor in single.sae.state_dict().items():
        torch.testing.assert_close(two.state_dict()[name], tensor, rtol=1e-4, atol=1e-5)
