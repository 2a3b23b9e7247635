"""progressive_sae.objectives: the pieces of the training loss."""

from __future__ import annotations

import torch

from progressive_sae.objectives import _CentredProduct


def test_the_centred_product_has_autograds_gradients_and_the_same_value():
    gen = torch.Generator().manual_seed(0)
    x, b_dec = torch.randn(64, 12, generator=gen), torch.randn(12, generator=gen)
    W, b = torch.randn(20, 12, generator=gen), torch.randn(20, generator=gen)
    upstream = torch.randn(64, 20, generator=gen)
    for x_wants_grad in (False, True):
        results = []
        for fn in (_CentredProduct.apply,
                   lambda x, b_dec, W, b: torch.addmm(b, x - b_dec, W.t())):
            leaves = [t.clone().requires_grad_(t is not x or x_wants_grad)
                      for t in (x, b_dec, W, b)]
            out = fn(*leaves)
            (out * upstream).sum().backward()
            results.append([out.detach()] + [t.grad for t in leaves])
        (mine, plain) = results
        assert torch.equal(mine[0], plain[0])  # the forward is the same product
        assert (mine[1] is None) == (not x_wants_grad)
        for got, want in zip(mine[1:], plain[1:]):
            if want is not None:
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
