"""The decoder's unit-norm geometry during training: the gradient's projection."""

import torch

from progressive_sae.sae import SAEConfig, build_sae


def test_the_projected_decoder_gradient_is_the_plain_projection_and_orthogonal_to_each_row():
    sae = build_sae(SAEConfig(d_in=48, num_latents=200, k=4))
    g = torch.Generator().manual_seed(0)
    grad = torch.randn(200, 48, generator=g)
    sae.W_dec.grad = grad.clone()
    sae.project_decoder_grad()
    w = sae.W_dec.detach().double()
    plain = grad.double() - (grad.double() * w).sum(1, keepdim=True) * w
    assert torch.allclose(sae.W_dec.grad.double(), plain, atol=1e-6)
    assert (sae.W_dec.grad.double() * w).sum(1).abs().max() < 1e-5
    assert (grad.double() * w).sum(1).abs().min() > 1e-4  # the premise: there was a parallel part
