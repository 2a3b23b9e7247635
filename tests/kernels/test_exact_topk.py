"""Each row's k largest exact values from a fast product's candidates: widening, the
threshold scan, fp32 recomputes, and decisions from the bounds alone."""

import pytest
import torch

from progressive_sae.kernels import (
    TopK,
    exact_pre_activations,
    exact_topk,
    selection,
    sparse_encode,
)
from progressive_sae.kernels.product_bound import ProductBound
from tests.kernels.hard_inputs import (
    KINDS,
    B,
    K,
    N,
    dense,
    fp32_block,
    hard_inputs,
    positive_entries_equal,
    wide_inputs,
)


def test_only_the_rows_too_wide_for_bf16_are_recomputed_in_fp32(monkeypatch):
    """Widening goes row by row: one row that too many entries can reach is recomputed in
    fp32 alone, the others are decided from their bf16 values with their own widths."""
    recomputed: list[int] = []
    in_fp32 = selection.ProductBlock.in_fp32

    def count_fp32(self):
        recomputed.append(self.y.shape[0])
        return in_fp32(self)

    monkeypatch.setattr(selection.ProductBlock, "in_fp32", count_fp32)
    monkeypatch.setattr(exact_topk, "MARGIN", 0.5)
    x, W, b = hard_inputs(5, "near-ties")
    # Row 3 gets a huge norm in dimensions no latent reads: its values stay as they were,
    # but its bf16 bound (∝ ‖x‖‖W_j‖) becomes loose, for it alone.
    W[:, :3] = 0.0
    x[3, :3] = 3000.0
    exact = exact_pre_activations(x, W, b)
    block = selection.ProductBlock(x, W, b, ProductBound.of(x, W, b, torch.bfloat16),
                                   torch.arange(B), None)
    xm, Wm = block.bound.augmented(x, W, b)
    block.y = xm @ Wm.t()
    floor = exact.topk(K, dim=1).values[:, -1]
    reach = block.reaching(floor).sum(1)
    limit = int(reach[torch.arange(B) != 3].max())
    assert int(reach[3]) > limit  # the premise: only row 3 is too wide
    assert int(reach[3]) > exact_topk.FP32_SHARE * N  # and reached by most of its entries
    # Rows past the limit but not past FP32_SHARE are scored apart from bf16, not in fp32.
    for row_limit in (limit, limit // 2):
        recomputed.clear()
        values, latents, reached = exact_topk.score_reaching(block, floor, row_limit, at_least=K)
        assert recomputed == [1]
        chosen = exact_topk.best_by_value_then_latent(values, latents, K)
        assert torch.equal(chosen[0], exact.topk(K, dim=1).values)
        assert torch.equal(dense(chosen), dense(TopK(K)(exact)))
        # Padding past a row's own width is never chosen and never marked reached.
        assert not (reached & (values == float("-inf"))).any()
        assert torch.equal(reached.sum(1)[torch.arange(B) != 3], reach[torch.arange(B) != 3])


def test_rows_the_candidates_do_not_settle_are_widened_then_recomputed_in_fp32(monkeypatch):
    calls = {"widened": 0, "fp32": 0}
    widened, in_fp32 = exact_topk._widened_topk, selection.ProductBlock.in_fp32

    def count_widened(*args):
        calls["widened"] += 1
        return widened(*args)

    def count_fp32(self):
        calls["fp32"] += 1
        return in_fp32(self)

    monkeypatch.setattr(exact_topk, "_widened_topk", count_widened)
    monkeypatch.setattr(selection.ProductBlock, "in_fp32", count_fp32)
    monkeypatch.setattr(exact_topk, "MARGIN", 1.0)  # k extra candidates leave rows to widen here
    x, W, b = hard_inputs(5, "near-ties")
    exact = exact_pre_activations(x, W, b)
    sparse_encode(x, W, b, TopK(K), None, torch.bfloat16)
    assert calls == {"widened": 1, "fp32": 0}  # one call per block, settled from bf16
    # Huge dimensions that no latent reads make the bf16 bound loose (it grows with ‖x‖):
    # more entries can reach the k-th value than WIDE_ROWS × the candidates (and FP32_SHARE
    # of the row), so those rows' product is recomputed in fp32.
    monkeypatch.setattr(exact_topk, "WIDE_ROWS", 1.0)
    monkeypatch.setattr(exact_topk, "FP32_SHARE", 0.0)
    x, W, b = hard_inputs(5, "huge-dims")
    W[:, :3] = 0.0
    exact = exact_pre_activations(x, W, b)
    v, i, _, _ = sparse_encode(x, W, b, TopK(K), None, torch.bfloat16)
    assert calls["fp32"] == 1
    assert torch.equal(dense((v, i)), dense(TopK(K)(exact)))


@pytest.mark.parametrize("kind", ["random", "duplicates", "mostly-negative", "loud-dims"])
def test_candidates_by_threshold_choose_what_the_rule_chooses(kind):
    x, W, b = wide_inputs(7, kind)
    exact = exact_pre_activations(x, W, b)
    bound = ProductBound.of(x, W, b, torch.bfloat16)
    xm, Wm = bound.augmented(x, W, b)
    block = selection.ProductBlock(x, W, b, bound, torch.arange(B), xm @ Wm.t())
    reference = TopK(K)(exact)
    for scan in (20, 64, 200):  # a few rows miss (too few at or above t), most settle
        stats = {"unsettled": 0, "reach": 0}
        code = exact_topk.certified_topk(block, K, scan, stats)
        positive_entries_equal(code, reference)
        assert torch.equal(code[0].clamp_min(0) > 0, reference[0] > 0)


@pytest.mark.parametrize("kind", KINDS)
def test_topk_latents_from_an_fp32_product_are_the_exact_ones(kind, monkeypatch):
    """Rows whose cut the bounds separate are decided without exact values; the rest (ties,
    near-ties) as `certified_topk` decides them. Which latents of value ≤ 0 fill a row is
    free (they decode to nothing), as for every rule."""
    scored: list[int] = []
    exact_of = selection.ProductBlock.exact

    def counting(self, latents):
        scored.append(latents.shape[0])
        return exact_of(self, latents)

    monkeypatch.setattr(selection.ProductBlock, "exact", counting)
    x, W, b = hard_inputs(12, kind)
    exact = exact_pre_activations(x, W, b)
    dead = torch.arange(1, N, 2)  # AuxK's case: a subset of the latents
    for columns, k in ((None, K - 1), (dead, 20)):  # an odd k splits a pair of duplicates
        scored.clear()
        latents = exact_topk.certified_topk_latents(fp32_block(x, W, b, columns), k)
        want = TopK(k, columns=columns)(exact)[1]

        def positive(chosen):
            return torch.zeros(B, N, dtype=torch.bool).scatter_(1, chosen, True) & (exact > 0)

        assert torch.equal(positive(latents), positive(want))
        if kind in ("random", "huge-dims", "mostly-negative"):
            assert sum(scored) <= B // 8  # nearly every row settled from the bounds
        if kind == "duplicates" and columns is None:
            assert sum(scored) > 0  # exact ties across the cut are decided exactly
