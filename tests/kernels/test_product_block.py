"""Reading a block of fast products: each row's largest entries."""

import pytest
import torch

from progressive_sae.kernels.product_block import largest


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_largest_takes_the_values_topk_takes(dtype):
    g = torch.Generator().manual_seed(3)
    y = torch.randn(40, 300, generator=g)
    y[0] = -y[0].abs()  # no positive value
    y[1, 3:] = -y[1, 3:].abs()  # three
    y[2, ::2] = 0.0
    y[3, 1::2] = -0.0
    y[4] = y[4].round()  # ties at the cut
    y[5, :] = 1.5
    y = y.to(dtype)
    for width in (1, 4, 17, 299, 300):
        values, positions = largest(y, width)
        expected = y.topk(width, dim=1, sorted=False).values
        assert torch.equal(values.sort(1).values, expected.sort(1).values), width
        assert torch.equal(y.gather(1, positions), values)
        assert (positions.sort(1).values.diff(dim=1) > 0).all()  # distinct entries
