"""Permutation, truncation and granularity modes of a trained-like SAE."""

import pytest
import torch

from progressive_sae import SAEConfig, build_sae, make_progressive, rank_latents
from progressive_sae.sae.base import SparseCode


def random_sae(activation="topk", n=64, d=16, k=6, seed=0):
    sae = build_sae(SAEConfig(d_in=d, num_latents=n, k=k, activation=activation))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(n, d, generator=g))
        sae.b_enc.copy_(torch.randn(n, generator=g) * 0.1)
        sae.b_dec.copy_(torch.randn(d, generator=g))
        if activation == "jumprelu":
            sae.threshold.copy_(torch.rand(n, generator=g))
        if activation == "batchtopk":
            sae.threshold.fill_(0.5)
    sae.eval()
    return sae


@pytest.mark.parametrize("activation", ["topk", "batchtopk", "jumprelu"])
def test_permutation_leaves_reconstructions_unchanged(activation):
    sae = random_sae(activation)
    x = torch.randn(128, 16)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(5))
    permuted = sae.permute(perm)
    permuted.eval()
    torch.testing.assert_close(permuted(x), sae(x), rtol=1e-5, atol=1e-5)
    # latent j of the permuted SAE is latent perm[j] of the original
    dense = sae.encode(x).to_dense(64)
    torch.testing.assert_close(permuted.encode(x).to_dense(64), dense[:, perm])


@pytest.mark.parametrize("g", [8, 16, 33, 64])
def test_truncation_equals_zeroing_latents_beyond_g(g):
    sae = random_sae()
    x = torch.randn(100, 16)
    small = sae.truncate(g)
    assert small.num_latents == g and small.cfg.k == max(1, min(g - 1, round(6 * g / 64)))
    # reference: the full SAE with every latent ≥ G removed before the TopK rule
    pre = sae.pre_activations(x)
    pre[:, g:] = float("-inf")
    values, indices = pre.topk(small.cfg.k, dim=1)
    dense = torch.zeros_like(pre).scatter_(1, indices, values.clamp_min(0))
    expected = dense @ sae.W_dec + sae.b_dec
    torch.testing.assert_close(small(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sae(x, granularity=g), expected, rtol=1e-5, atol=1e-5)
    assert small.W_enc.shape == (g, 16)


def test_prefix_mode_drops_latents_of_the_full_code():
    sae = random_sae()
    x = torch.randn(50, 16)
    full = sae.encode(x).to_dense(64)
    full[:, 20:] = 0
    prefix = sae.encode(x, granularity=20, mode="prefix").to_dense(64)
    torch.testing.assert_close(prefix, full)


def test_jumprelu_truncation_keeps_per_latent_thresholds():
    sae = random_sae("jumprelu")
    x = torch.randn(64, 16)
    small = sae.truncate(24)
    torch.testing.assert_close(small.threshold, sae.threshold[:24])
    pre = sae.pre_activations(x)[:, :24]
    expected = (pre * (pre > sae.threshold[:24])) @ sae.W_dec[:24] + sae.b_dec
    torch.testing.assert_close(small(x), expected, rtol=1e-5, atol=1e-5)


def test_ranking_puts_the_largest_mean_square_first():
    sae = random_sae()
    x = torch.randn(500, 16)
    perm = rank_latents(sae, x, by="mean_sq")
    code: SparseCode = sae.encode(x)
    mean_sq = code.to_dense(64).pow(2).mean(0)
    assert torch.all(mean_sq[perm][:-1] >= mean_sq[perm][1:])
    freq_perm = rank_latents(sae, x, by="frequency")
    freq = (code.to_dense(64) > 0).float().mean(0)
    assert torch.all(freq[freq_perm][:-1] >= freq[freq_perm][1:])
    progressive = make_progressive(sae, x)
    torch.testing.assert_close(progressive(x), sae(x), rtol=1e-5, atol=1e-5)
    assert progressive.cfg.metadata["permuted_by"] == "mean_sq"
