"""The CUDA paths against the CPU ones: kernels, training, bf16 selection, scoring, files.

Skipped where no GPU is present (CI); `make test` on a GPU machine runs them.
"""

import pytest
import torch

from progressive_sae import (
    TrainConfig,
    Trainer,
    evaluate_reconstruction,
    mean_max_cosine_similarity,
)
from progressive_sae.data import TensorSource
from progressive_sae.evaluation import EvalSet, evaluate_fidelity
from progressive_sae.kernels import (
    BatchTopK,
    TopK,
    exact_pre_activations,
    nested_squared_errors,
    nested_squared_errors_reference,
    sparse_decode,
    sparse_decode_reference,
    sparse_encode,
    sparse_encode_reference,
)
from progressive_sae.sae import load_sae, save_sae

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

B, D, N, K = 128, 32, 256, 8


def _inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g)
    W = torch.randn(N, D, generator=g) / D**0.5
    b = torch.randn(N, generator=g) * 0.1
    return x, W, b


def _encode_decode(encode, decode, x, W_enc, b_enc, W_dec, matmul_dtype=None):
    """Loss of a TopK encode + decode, and the gradients of every input."""
    leaves = [t.clone().requires_grad_() for t in (x, W_enc, b_enc, W_dec)]
    xc, we, be, wd = leaves
    select = TopK(K)
    if matmul_dtype is None:
        values, indices, _, _ = encode(xc, we, be, select)
    else:
        values, indices, _, _ = encode(xc, we, be, select, None, matmul_dtype)
    out = decode(values, indices, wd)
    loss = (out - xc).pow(2).sum()
    loss.backward()
    return [loss.detach()] + [t.grad for t in leaves]


def test_sparse_kernels_on_cuda_match_the_cpu_reference():
    x, W, b = _inputs(0)
    expected = _encode_decode(sparse_encode_reference, sparse_decode_reference, x, W, b, W)
    got = _encode_decode(sparse_encode, sparse_decode, x.cuda(), W.cuda(), b.cuda(), W.cuda())
    for fast, ref in zip(got, expected):
        torch.testing.assert_close(fast.cpu(), ref, rtol=1e-4, atol=1e-4)


def test_bf16_selection_on_cuda_recomputes_fp32_values():
    x, W, b = _inputs(1)
    fp32 = _encode_decode(sparse_encode, sparse_decode, x.cuda(), W.cuda(), b.cuda(), W.cuda(),
                          torch.float32)
    bf16 = _encode_decode(sparse_encode, sparse_decode, x.cuda(), W.cuda(), b.cuda(), W.cuda(),
                          torch.bfloat16)
    # bf16 may pick a different last latent for a few rows; the loss stays within 1%.
    assert abs(float(bf16[0]) - float(fp32[0])) <= 0.01 * float(fp32[0])


def test_matryoshka_errors_on_cuda_match_the_cpu_reference():
    g = torch.Generator().manual_seed(2)
    indices = torch.stack([torch.randperm(N, generator=g)[:K] for _ in range(B)])
    values = torch.rand(B, K, generator=g)
    W = torch.randn(N, D, generator=g)
    target = torch.randn(B, D, generator=g)
    sizes = torch.tensor([16, 64, N])
    weights = torch.tensor([0.5, 0.3, 0.2])
    ref_loss, ref_sq, ref_res = nested_squared_errors_reference(values, indices, W, sizes,
                                                                target, weights)
    loss, sq, res = nested_squared_errors(values.cuda(), indices.cuda(), W.cuda(),
                                          sizes.cuda(), target.cuda(), weights.cuda())
    torch.testing.assert_close(loss.cpu(), ref_loss, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(sq.cpu(), ref_sq, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(res.cpu(), ref_res, rtol=1e-4, atol=1e-4)


def _cfg(device: str, **kw) -> TrainConfig:
    base = dict(num_latents=128, k=4, batch_size=1024, total_tokens=1024 * 200, device=device)
    return TrainConfig(**(base | kw))


@pytest.mark.parametrize("objective", [{}, {"granularities": [16, 64, 128]},
                                       {"activation": "batchtopk"}])
def test_training_on_cuda_recovers_features_like_cpu(synthetic, objective):
    held_out = synthetic.rows(90_000, 98_192)
    fvu = {}
    for device in ("cpu", "cuda"):
        trainer = Trainer(_cfg(device, **objective), synthetic, progress=False)
        trainer.fit()
        sae = trainer.sae
        assert sae.W_dec.device.type == device
        if device == "cuda":
            assert trainer.matmul_dtype == "bfloat16"
            assert mean_max_cosine_similarity(sae.W_dec.cpu(), synthetic.features) >= 0.9
        fvu[device] = evaluate_reconstruction(sae.eval(), held_out).fvu
    assert fvu["cuda"] <= 1.1 * fvu["cpu"] + 0.01, fvu


def test_cuda_trained_sae_saves_and_scores_like_on_cpu(synthetic, tmp_path):
    trainer = Trainer(_cfg("cuda", total_tokens=1024 * 30), synthetic, run_dir=tmp_path / "run",
                      progress=False)
    trainer.fit()
    on_gpu = trainer.sae.eval()
    on_cpu = load_sae(save_sae(on_gpu, tmp_path / "copy"))
    assert on_cpu.W_dec.device.type == "cpu"
    evalset = EvalSet(TensorSource(synthetic.rows(90_000, 94_096)), rsa_rows=256)
    on_gpu.selection_dtype = on_cpu.selection_dtype = torch.float32
    for g in (32, 128):
        gpu_point = evaluate_fidelity(on_gpu, evalset, g)
        cpu_point = evaluate_fidelity(on_cpu, evalset, g)
        assert gpu_point.fvu == pytest.approx(cpu_point.fvu, rel=1e-3)
        assert gpu_point.l0 == pytest.approx(cpu_point.l0, rel=1e-2)
        assert gpu_point.rsa == pytest.approx(cpu_point.rsa, abs=1e-3)


@pytest.mark.parametrize("rule", ["topk", "batchtopk"])
def test_selection_on_cuda_is_exact_in_every_product_dtype(rule):
    """Row blocks with AuxK on the GPU: the exact rule's latents and values, whether bf16
    or fp32 proposes the candidates, on near-tied inputs."""
    x, W, b = (t.cuda() for t in _inputs(3))
    W[1::2] = W[0::2] * (1 + 1e-4)  # pairs of latents a bf16 product cannot tell apart
    chosen = TopK(K) if rule == "topk" else BatchTopK(K)
    dead = torch.arange(0, N, 3, device="cuda")
    exact = exact_pre_activations(x, W, b)
    want = [chosen(exact), TopK(5, columns=dead)(exact)]
    for matmul_dtype in (torch.float32, torch.bfloat16):
        for rows in (None, 7):
            v, i, av, ai = sparse_encode(x, W, b, chosen, TopK(5, columns=dead), matmul_dtype,
                                         rows)
            for (gv, gi), (wv, wi) in zip(((v, i), (av, ai)), want):
                got = torch.zeros(B, N, device="cuda").scatter_add(1, gi, gv)
                ref = torch.zeros(B, N, device="cuda").scatter_add(1, wi, wv.clamp_min(0))
                assert torch.equal(got, ref)
