"""Reading a block of fast products: each row's largest entries, entries above a threshold."""

import pytest
import torch

from progressive_sae.kernels import exact_pre_activations
from progressive_sae.kernels.product_block import GROUP, ProductBlock, largest
from progressive_sae.kernels.product_bound import ProductBound
from tests.kernels.hard_inputs import (
    KINDS,
    B,
    N,
    fp32_block,
    hard_inputs,
)


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


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_largest_of_long_rows_takes_the_values_topk_takes(dtype):
    """Long rows are searched group by group (`GROUP` columns n/GROUP apart): the rows
    here put their largest values in one group, at its edges, or tied across groups."""
    g = torch.Generator().manual_seed(5)
    rows, n = 24, GROUP * 256
    stride = n // GROUP
    y = torch.randn(rows, n, generator=g)
    y[0, 7::stride] = 50 + torch.arange(GROUP, dtype=torch.float32)  # one group holds all
    y[1, :stride] = 40.0  # one entry in every group ties at the top
    y[2] = y[2].round()  # ties everywhere
    y[3] = -y[3].abs()  # no positive value
    y[4, 10:] = -y[4, 10:].abs()  # ten
    y[5, stride - 1::stride] = 30.0  # the last column of every slice
    y = y.to(dtype)
    for width in (1, 5, GROUP, 40, n // (2 * GROUP)):
        values, positions = largest(y, width)
        expected = y.topk(width, dim=1, sorted=False).values
        assert torch.equal(values.sort(1).values, expected.sort(1).values), width
        assert torch.equal(y.gather(1, positions), values)
        assert (positions.sort(1).values.diff(dim=1) > 0).all()
    # A view of every other row (rows not adjacent in memory) is searched the same way.
    view = y[::2]
    assert torch.equal(largest(view, 9)[0].sort(1).values,
                       view.topk(9, dim=1).values.sort(1).values)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_entries_at_least_a_threshold_and_reaching_a_floor_are_compared_as_values(dtype):
    """Thresholds > 0 are compared as bits read as integers; negative values, both zeros
    and ties at the threshold must come out as a plain comparison of values does."""
    g = torch.Generator().manual_seed(9)
    x, W, b = torch.randn(6, 16, generator=g), torch.randn(64, 16, generator=g), torch.zeros(64)
    bound = ProductBound.of(x, W, b, dtype)
    y = torch.randn(6, 64, generator=g).to(dtype)
    y[0, :8] = -0.0
    y[1, :8] = 0.0
    y[2] = -y[2].abs()
    y[3, :6] = 0.75  # ties at the threshold
    block = ProductBlock(x, W, b, bound, torch.arange(6), y)
    positive = torch.tensor([0.5, 0.25, 1.0, 0.75, 0.1, 3.0]).to(dtype)
    with_zero = positive.clone()
    with_zero[1] = 0.0  # the plain comparison path
    for threshold in (positive, with_zero, -positive):
        assert torch.equal(block.at_least(threshold), y >= threshold.unsqueeze(1))
    for floor in (positive.float(), with_zero.float()):
        upper = bound.upper(y)
        reach = block.reaching(floor)
        assert not ((upper >= floor.unsqueeze(1)) & (upper > 0) & ~reach).any()  # a superset
        assert not (reach & (y <= 0)).any()


@pytest.mark.parametrize("kind", KINDS)
def test_an_fp32_products_lower_bound_holds_and_is_tight(kind):
    x, W, b = hard_inputs(11, kind)
    exact = exact_pre_activations(x, W, b)
    block = fp32_block(x, W, b)
    lower = block.lower(torch.arange(N).expand(B, N))
    assert (lower <= exact).all()
    plain = x @ W.t() + b
    error = (plain - exact).abs().max()
    assert (exact - lower).max() < 300 * max(float(error), 1e-6)
    with pytest.raises(ValueError, match="expected fp32"):
        bf16 = ProductBound.of(x, W, b, torch.bfloat16)
        ProductBlock(x, W, b, bf16, block.rows, block.y).lower(block.y[:, :2].long())
