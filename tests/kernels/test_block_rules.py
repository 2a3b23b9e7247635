"""Choosing latents block by block of rows gives the whole matrix's choice, values and gradients."""

import pytest
import torch

from progressive_sae.kernels import encoder_backward, sparse_encode, sparse_encode_reference
from progressive_sae.kernels.block_rules import BatchRule, DeadTopK, RowRule
from progressive_sae.objectives import sae_loss
from progressive_sae.sae import SAEConfig, build_sae
from progressive_sae.sae.base import topk_select
from progressive_sae.sae.batchtopk import batch_topk_select

B, D, N, K = 64, 24, 96, 6


def inputs(seed: int, hog: bool = False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g)
    if hog:  # one row takes far more than 4k of the batch's k·B slots: forces recomputation
        x[5] *= 30.0
    return x, torch.randn(N, D, generator=g), torch.randn(N, generator=g) * 0.1


def dense_rules(rule: str):
    dead = torch.zeros(N, dtype=torch.bool)
    dead[::3] = True
    plain = (lambda p: topk_select(p, K)) if rule == "topk" else (
        lambda p: batch_topk_select(p, K))
    blocked = RowRule(plain) if rule == "topk" else BatchRule(plain, width=4 * K)
    return plain, blocked, DeadTopK(dead, 5), DeadTopK(dead, 5)._select


def encode_and_backward(encode, x, W, b, select, aux, **kwargs):
    xs, w, bb = (t.clone().requires_grad_() for t in (x, W, b))
    v, i, av, ai = encode(xs, w, bb, select, aux, **kwargs)
    weights = torch.randn(N, generator=torch.Generator().manual_seed(9))
    dense = torch.zeros(B, N).scatter_add(1, i, v)
    loss = (dense * weights).sum() + (torch.zeros(B, N).scatter_add(1, ai, av) ** 2).sum()
    loss.backward()
    aux_dense = torch.zeros(B, N).scatter_add(1, ai, av)
    return dense.detach(), aux_dense.detach(), xs.grad, w.grad, bb.grad


@pytest.mark.parametrize("rule", ["topk", "batchtopk"])
@pytest.mark.parametrize("rows", [1, 7, B])
@pytest.mark.parametrize("hog", [False, True])
def test_blocked_encode_equals_the_plain_reference(rule, rows, hog):
    x, W, b = inputs(3, hog)
    plain, blocked, aux_blocked, aux_plain = dense_rules(rule)
    fast = encode_and_backward(sparse_encode, x, W, b, blocked, aux_blocked,
                               rows_per_block=rows)
    ref = encode_and_backward(sparse_encode_reference, x, W, b, plain, aux_plain)
    for got, want in zip(fast, ref):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    if rule == "batchtopk":
        assert int((fast[0] > 0).sum()) <= K * B
        if hog:  # the hog row kept more than its 4k candidates: the widening ran
            assert int((fast[0][5] > 0).sum()) > 4 * K


def test_batch_rule_widens_only_the_rows_that_ran_out_of_candidates():
    x, W, b = inputs(4, hog=True)
    calls = []
    rule = BatchRule(lambda p: batch_topk_select(p, K), width=4 * K)
    original_finish = rule.finish

    def finish(candidates, full_rows, n):
        return original_finish(candidates, lambda r: calls.append(r.tolist()) or full_rows(r), n)

    rule.finish = finish
    values, indices = encoder_backward.select_in_blocks(x, W, b, [rule], torch.float32, 16)[0]
    assert calls and all(5 in c for c in calls) and len(calls[0]) < B // 4
    kept = torch.zeros(B, N).scatter_add(1, indices, values) != 0
    pre = x @ W.t() + b
    assert torch.equal(kept, pre >= pre.flatten().topk(K * B).values.min())


@pytest.mark.parametrize("rule", ["topk", "batchtopk"])
def test_bf16_blocked_selection_equals_the_whole_matrix_bf16_selection(rule):
    """Same latents as one bf16 matmul over the whole batch; values/gradients exact fp32."""
    x, W, b = inputs(5)
    plain, blocked, aux_blocked, aux_plain = dense_rules(rule)
    whole = encode_and_backward(sparse_encode, x, W, b, plain, aux_plain,
                                matmul_dtype=torch.bfloat16)
    fast = encode_and_backward(sparse_encode, x, W, b, blocked, aux_blocked,
                               matmul_dtype=torch.bfloat16, rows_per_block=5)
    for got, want in zip(fast, whole):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # ... and the selected values are the fp32 pre-activations, not bf16 ones
    pre = x @ W.t() + b
    chosen = fast[0] != 0
    torch.testing.assert_close(fast[0][chosen], pre[chosen])


@pytest.mark.parametrize("objective", [
    {}, {"granularities": [8, 32, N]}, {"activation": "batchtopk"},
])
def test_training_loss_in_small_blocks_matches_the_reference(objective, monkeypatch):
    # ~3 rows per block of pre-activations
    monkeypatch.setattr(encoder_backward, "BLOCK_BYTES", 3 * N * 4)
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(6)) + 1.0
    cfg = SAEConfig(d_in=D, num_latents=N, k=K, activation=objective.get("activation", "topk"),
                    granularities=objective.get("granularities"))
    dead = torch.zeros(N, dtype=torch.bool)
    dead[60:] = True
    results = []
    for reference in (False, True):
        sae = build_sae(cfg)
        sae.reset_parameters(torch.Generator().manual_seed(1))
        sae.use_reference_kernels = reference
        g = torch.tensor(cfg.granularities) if cfg.granularities else None
        parts = sae_loss(sae, x, granularities=g, dead=dead, k_aux=12)
        parts.loss.backward()
        results.append([parts.loss, parts.aux_loss, parts.code.to_dense(N)]
                       + [p.grad for p in sae.parameters()])
    assert float(results[0][1]) > 0  # AuxK ran
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
