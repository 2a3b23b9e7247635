"""Our AdamW is torch's fused AdamW, update for update, without importing torch._dynamo."""

import subprocess
import sys

import torch

from progressive_sae.train.adamw import FusedAdamW


def test_bitwise_equal_to_torch_fused_adamw():
    g = torch.Generator().manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(64, 8, generator=g)),
            torch.nn.Parameter(torch.randn(8, generator=g))]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    settings = dict(lr=3e-3, betas=(0.9, 0.95), eps=1e-7, weight_decay=0.02)
    a = FusedAdamW(ours, **settings)
    b = torch.optim.AdamW(theirs, fused=True, **settings)
    for step in range(6):
        for x, y in zip(ours, theirs):
            grad = torch.randn(x.shape, generator=g)
            x.grad, y.grad = grad.clone(), grad.clone()
        lr = 3e-3 * (step + 1) / 6
        a.param_groups[0]["lr"] = lr
        b.param_groups[0]["lr"] = lr
        a.step()
        b.step()
        a.zero_grad(set_to_none=True)
        b.zero_grad(set_to_none=True)
    for x, y in zip(ours, theirs):
        assert torch.equal(x, y)
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(a.state[x][key], b.state[y][key]), key
            assert a.state[x][key].dtype == b.state[y][key].dtype


def test_training_imports_no_dynamo():
    code = ("import sys, torch\n"
            "from progressive_sae import TrainConfig, Trainer\n"
            "t = Trainer(TrainConfig(num_latents=64, k=4, batch_size=32, total_tokens=64),"
            " torch.randn(256, 16), progress=False)\n"
            "t.fit()\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
