"""Each fast path against its plain dense reference: values and gradients."""

import pytest
import torch

from progressive_sae.kernels import (
    nested_squared_errors,
    nested_squared_errors_reference,
    prefix_decode,
    prefix_decode_reference,
    sparse_decode,
    sparse_decode_reference,
    sparse_encode,
    sparse_encode_reference,
)
from progressive_sae.kernels.row_accumulate import accumulate_rows
from progressive_sae.kernels.selection import BatchTopK, TopK

B, D, N, K = 64, 24, 96, 6


def random_code(generator: torch.Generator, batch: int = B, width: int = K):
    indices = torch.stack([torch.randperm(N, generator=generator)[:width] for _ in range(batch)])
    values = torch.rand(batch, width, generator=generator)
    values[:, -1] = 0.0  # padding entries must behave as absent
    return values, indices


def test_accumulate_rows_matches_index_add():
    g = torch.Generator().manual_seed(0)
    rows = torch.randint(0, N, (300,), generator=g)
    sources = torch.randint(0, 40, (300,), generator=g)
    coeffs = torch.randn(300, generator=g)
    vectors = torch.randn(40, D, generator=g)
    expected = torch.zeros(N, D).index_add_(0, rows, coeffs[:, None] * vectors[sources])
    torch.testing.assert_close(accumulate_rows(rows, sources, coeffs, vectors, N), expected)


def test_sparse_decode_values_and_gradients_match_reference():
    g = torch.Generator().manual_seed(1)
    values, indices = random_code(g)
    W = torch.randn(N, D, generator=g)
    grad_out = torch.randn(B, D, generator=g)
    results = []
    for decode in (sparse_decode, sparse_decode_reference):
        v, w = values.clone().requires_grad_(), W.clone().requires_grad_()
        out = decode(v, indices, w)
        out.backward(grad_out)
        results.append((out, v.grad, w.grad))
    for fast, ref in zip(*results):
        torch.testing.assert_close(fast, ref)


@pytest.mark.parametrize("granularities", [[N], [8, 24, 48, N], [1, 2, N - 1, N], [10, 50]])
def test_prefix_decode_equals_per_granularity_dense_decodes(granularities):
    g = torch.Generator().manual_seed(2)
    values, indices = random_code(g)
    W = torch.randn(N, D, generator=g)
    sizes = torch.tensor(granularities)
    grad_out = torch.randn(B, len(granularities), D, generator=g)
    results = []
    for decode in (prefix_decode, prefix_decode_reference):
        v, w = values.clone().requires_grad_(), W.clone().requires_grad_()
        out = decode(v, indices, w, sizes)
        out.backward(grad_out)
        results.append((out, v.grad, w.grad))
    for fast, ref in zip(*results):
        torch.testing.assert_close(fast, ref)
    # and literally: each slice is the dense decode of the latents below that size
    dense = torch.zeros(B, N).scatter_add(1, indices, values)
    for i, m in enumerate(granularities):
        torch.testing.assert_close(results[0][0][:, i].detach(), dense[:, :m] @ W[:m])


@pytest.mark.parametrize("rule", ["topk", "batchtopk"])
@pytest.mark.parametrize("with_aux", [False, True])
@pytest.mark.parametrize("matmul_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("x_needs_grad", [False, True])
def test_sparse_encode_values_and_gradients_match_reference(rule, with_aux, matmul_dtype,
                                                            x_needs_grad):
    """The input is x − b_dec: b_dec's gradient comes from b_enc's where x needs none."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(B, D, generator=g)
    W = torch.randn(N, D, generator=g)
    b = torch.randn(N, generator=g) * 0.1
    b_dec = torch.randn(D, generator=g) * 0.3
    select = TopK(K) if rule == "topk" else BatchTopK(K)
    aux_select = TopK(4, columns=torch.arange(0, N, 3)) if with_aux else None
    results = []
    for fast in (True, False):
        xs = x.clone().requires_grad_(x_needs_grad)
        w, bb, bd = (t.clone().requires_grad_() for t in (W, b, b_dec))
        if fast:
            v, i, av, ai = sparse_encode(xs, w, bb, select, aux_select, matmul_dtype, b_dec=bd)
        else:
            v, i, av, ai = sparse_encode_reference(xs - bd, w, bb, select, aux_select)
        code = torch.zeros(B, N).scatter_add(1, i, v)  # entry order within a row is free
        loss = (code * torch.randn(B, N, generator=torch.Generator().manual_seed(9))).sum()
        aux_code = torch.zeros(B, N).scatter_add(1, ai, av) if with_aux else code
        loss = loss + (aux_code**2).sum()
        loss.backward()
        results.append((code.detach(), aux_code.detach(), w.grad, bb.grad, bd.grad)
                       + ((xs.grad,) if x_needs_grad else ()))
    assert torch.equal(results[0][0] > 0, results[1][0] > 0)  # the same latents
    for fast, ref in zip(*results):  # values: one fp32 dot each vs the reference's GEMM
        # Sums in another order: absolute differences scale with the terms summed.
        scale = max(1.0, float(ref.abs().max()))
        torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-6 * scale)


def test_batch_topk_keeps_exactly_k_times_batch_largest():
    g = torch.Generator().manual_seed(4)
    pre = torch.randn(32, N, generator=g)
    pre[0] += 10.0  # one row hogs many of the batch's slots
    values, indices = BatchTopK(4)(pre)
    kept = torch.zeros_like(pre).scatter_(1, indices, values)
    expected_cut = pre.flatten().topk(4 * 32).values.min()
    assert (kept != 0).sum() == 4 * 32
    assert torch.equal(kept != 0, pre >= expected_cut)


@pytest.mark.parametrize("granularities", [[N], [8, 24, 48, N], [5, 90]])
def test_nested_squared_errors_match_dense_reconstructions(granularities):
    g = torch.Generator().manual_seed(6)
    values, indices = random_code(g)
    W = torch.randn(N, D, generator=g)
    target = torch.randn(B, D, generator=g)
    sizes = torch.tensor(granularities)
    weights = torch.rand(len(granularities), generator=g)
    results = []
    for errors in (nested_squared_errors, nested_squared_errors_reference):
        v, w, t = (a.clone().requires_grad_() for a in (values, W, target))
        loss, sq, residual = errors(v, indices, w, sizes, t, weights)
        (3.0 * loss).backward()  # an upstream gradient other than 1 scales every gradient
        results.append((loss, sq, residual, v.grad, w.grad, t.grad))
        with torch.no_grad():  # without gradients: the same values
            assert torch.allclose(errors(v, indices, w, sizes, t, weights)[1], sq)
    torch.testing.assert_close(results[0][0], (weights * results[0][1]).sum())
    for fast, ref in zip(*results):
        torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)


def test_auto_selection_dtype_is_bf16_only_where_the_cpu_multiplies_it_natively(monkeypatch):
    from progressive_sae.kernels import fast_matmul_dtype, precision

    monkeypatch.setattr(precision, "_cpu_has_fast_bf16", lambda: True)
    assert fast_matmul_dtype("cpu") == torch.bfloat16
    monkeypatch.setattr(precision, "_cpu_has_fast_bf16", lambda: False)
    assert fast_matmul_dtype("cpu") == torch.float32


def test_nested_squared_errors_second_backward_decodes_again():
    # The backward releases the gradients the forward computed, group by group; a second
    # backward (retain_graph) must decode and walk again and give the same gradients.
    g = torch.Generator().manual_seed(7)
    values, indices = random_code(g)
    W = torch.randn(N, D, generator=g)
    target = torch.randn(B, D, generator=g)
    v, w, t = (a.clone().requires_grad_() for a in (values, W, target))
    loss, _, _ = nested_squared_errors(v, indices, w, torch.tensor([8, 24, 48, N]), t,
                                       torch.tensor([0.1, 0.2, 0.3, 0.4]))
    loss.backward(retain_graph=True)
    first = (v.grad.clone(), w.grad.clone(), t.grad.clone())
    v.grad = w.grad = t.grad = None
    loss.backward()
    for a, b in zip(first, (v.grad, w.grad, t.grad)):
        torch.testing.assert_close(a, b)


def test_accumulate_rows_into_a_given_buffer_equals_a_fresh_result():
    g = torch.Generator().manual_seed(8)
    rows = torch.randint(0, 50, (400,), generator=g)
    sources = torch.randint(0, 30, (400,), generator=g)
    coeffs = torch.randn(400, generator=g)
    vectors = torch.randn(30, 16, generator=g)
    fresh = accumulate_rows(rows, sources, coeffs, vectors, 50)
    out = torch.full((50, 16), float("nan"))  # whatever the buffer held must not leak through
    given = accumulate_rows(rows, sources, coeffs, vectors, 50, out=out)
    assert given.data_ptr() == out.data_ptr()
    assert torch.equal(given, fresh)
