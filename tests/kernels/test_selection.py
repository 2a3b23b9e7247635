"""Exact selection: whatever product proposes the candidates, the rules choose the latents
(and values) that they choose on the exact pre-activations — on hard inputs."""

import pytest
import torch

from progressive_sae.kernels import (
    BatchTopK,
    Threshold,
    TopK,
    encoder_backward,
    exact_pre_activations,
    fast_matmul_dtype,
    selection,
    sparse_encode,
    sparse_encode_reference,
)
from progressive_sae.kernels.product_bound import ProductBound
from progressive_sae.objectives import sae_loss
from progressive_sae.sae import SAEConfig, build_sae

B, D, N, K = 64, 48, 192, 6
DTYPES = [torch.float32, torch.bfloat16]


def hard_inputs(seed: int, kind: str):
    """Inputs on which a bf16 product picks other latents than the exact values do."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g)
    W = torch.randn(N, D, generator=g) / D**0.5
    b = torch.randn(N, generator=g) * 0.05
    if kind == "near-ties":  # latents in pairs 1e-4 apart: below bf16's resolution
        W[1::2] = W[0::2] * (1 + 1e-4)
        b[1::2] = b[0::2]
    elif kind == "duplicates":  # exact ties: the lower latent wins
        W[1::2], b[1::2] = W[0::2], b[0::2]
    elif kind == "huge-dims":  # a few dimensions ~1000x the rest, as in LM residual streams
        x[:, :3] *= 1000.0
        x[:, 3:] += torch.randn(B, D - 3, generator=g)
    elif kind == "zero-latents":  # an all-zero half: exact zeros, never active
        W[N // 2:], b[N // 2:] = 0.0, 0.0
    elif kind == "mostly-negative":  # rows with fewer positive values than candidates
        b -= 2.5
    return x, W, b


KINDS = ["random", "near-ties", "duplicates", "huge-dims", "zero-latents", "mostly-negative"]


def rules(exact: torch.Tensor):
    """Every rule, with θ exactly at an exact value (so `>` must exclude that entry)."""
    at_value = exact[3, 7].clone()
    theta = exact.quantile(0.9, dim=0)
    theta[7] = exact[3, 7]
    dead = torch.arange(0, N, 3)
    return {
        "topk": TopK(K), "batchtopk": BatchTopK(K), "threshold": Threshold(at_value),
        "per-latent-threshold": Threshold(theta), "auxk-dead": TopK(5, columns=dead),
        "k1": TopK(1),
    }


def dense(code, n: int = N) -> torch.Tensor:
    values, latents = code
    return torch.zeros(values.shape[0], n).scatter_add(1, latents, values.clamp_min(0))


def positive_entries_equal(code, reference, *context) -> None:
    """The active entries of each row, in order (zeros are padding), are the reference's."""
    for row in range(reference[0].shape[0]):
        got, want = code[0][row] > 0, reference[0][row] > 0
        assert torch.equal(code[0][row][got], reference[0][row][want]), (*context, row)
        assert torch.equal(code[1][row][got], reference[1][row][want]), (*context, row)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [None, 7])
def test_every_rule_chooses_what_it_chooses_on_the_exact_values(kind, dtype, rows):
    x, W, b = hard_inputs(1, kind)
    exact = exact_pre_activations(x, W, b)
    for name, rule in rules(exact).items():
        v, i, _, _ = sparse_encode(x, W, b, rule, None, dtype, rows)
        assert torch.equal(dense((v, i)), dense(rule(exact))), (name, kind, dtype, rows)


@pytest.mark.parametrize("kind", KINDS)
def test_codes_are_the_references_entry_by_entry_whatever_the_candidates(kind, monkeypatch):
    """Not only the same latents: the same entries in the same order (the order a decode
    sums them in), for any number of candidates — so the search never changes a result."""
    x, W, b = hard_inputs(2, kind)
    exact = exact_pre_activations(x, W, b)
    for name, rule in rules(exact).items():
        ref_v, ref_i = rule(exact)
        for margin in (0.5, 1.5, 4.0):
            monkeypatch.setattr(selection, "MARGIN", margin)
            v, i, _, _ = sparse_encode(x, W, b, rule, None, torch.bfloat16, 16)
            positive_entries_equal((v, i), (ref_v.clamp_min(0), ref_i), name, kind, margin)


def test_only_the_rows_too_wide_for_bf16_are_recomputed_in_fp32(monkeypatch):
    """Widening goes row by row: one row that too many entries can reach is recomputed in
    fp32 alone, the others are decided from their bf16 values with their own widths."""
    recomputed: list[int] = []
    in_fp32 = selection.ProductBlock.in_fp32

    def count_fp32(self):
        recomputed.append(self.y.shape[0])
        return in_fp32(self)

    monkeypatch.setattr(selection.ProductBlock, "in_fp32", count_fp32)
    monkeypatch.setattr(selection, "MARGIN", 0.5)
    x, W, b = hard_inputs(5, "near-ties")
    # Row 3 gets a huge norm in dimensions no latent reads: its values stay as they were,
    # but its bf16 bound (∝ ‖x‖‖W_j‖) becomes loose, for it alone.
    W[:, :3] = 0.0
    x[3, :3] = 3000.0
    exact = exact_pre_activations(x, W, b)
    block = selection.ProductBlock(x, W, b, ProductBound.of(x, W, b, torch.bfloat16),
                                   torch.arange(B), None)
    xm, Wm, bm = block.bound.augmented(x, W, b)
    block.y = torch.addmm(bm, xm, Wm.t())
    floor = exact.topk(K, dim=1).values[:, -1]
    reach = block.reaching(floor).sum(1)
    limit = int(reach[torch.arange(B) != 3].max())
    assert int(reach[3]) > limit  # the premise: only row 3 is too wide
    assert int(reach[3]) > selection.FP32_SHARE * N  # and reached by most of its entries
    # Rows past the limit but not past FP32_SHARE are scored apart from bf16, not in fp32.
    for row_limit in (limit, limit // 2):
        recomputed.clear()
        values, latents, reached = selection._reaching(block, floor, row_limit, at_least=K)
        assert recomputed == [1]
        chosen = selection.best_by_value_then_latent(values, latents, K)
        assert torch.equal(chosen[0], exact.topk(K, dim=1).values)
        assert torch.equal(dense(chosen), dense(TopK(K)(exact)))
        # Padding past a row's own width is never chosen and never marked reached.
        assert not (reached & (values == float("-inf"))).any()
        assert torch.equal(reached.sum(1)[torch.arange(B) != 3], reach[torch.arange(B) != 3])


def test_the_inputs_are_hard_for_a_plain_bf16_choice():
    """Without the exact decision, bf16 picks other latents on every hard kind."""
    for kind in ["near-ties", "duplicates", "huge-dims"]:
        x, W, b = hard_inputs(1, kind)
        exact = exact_pre_activations(x, W, b)
        fast = torch.addmm(b.bfloat16(), x.bfloat16(), W.bfloat16().t()).float()
        plain = fast.topk(K, dim=1).indices.sort(1).values
        assert not torch.equal(plain, TopK(K)(exact)[1].sort(1).values), kind


def test_threshold_exactly_at_a_value_excludes_it_and_its_duplicates_tie():
    x, W, b = hard_inputs(2, "duplicates")
    exact = exact_pre_activations(x, W, b)
    at = exact[3, 8]  # latent 8 and its duplicate 9 hold the same exact value
    assert exact[3, 9] == at
    for dtype in DTYPES:
        v, i, _, _ = sparse_encode(x, W, b, Threshold(at), None, dtype)
        got = dense((v, i))
        assert got[3, 8] == 0 and got[3, 9] == 0
        assert torch.equal(got, dense(Threshold(at)(exact)))
        v, i, _, _ = sparse_encode(x, W, b, TopK(K), None, dtype)
        chosen = set(i[3][v[3] > 0].tolist())
        assert not ({8, 9} <= chosen) or torch.equal(dense((v, i)), dense(TopK(K)(exact)))


@pytest.mark.parametrize("kind", KINDS)
def test_fp32_and_bf16_products_give_bitwise_identical_codes(kind):
    x, W, b = hard_inputs(3, kind)
    for rule in (TopK(K), BatchTopK(K)):
        codes = [dense(sparse_encode(x, W, b, rule, None, dtype)[:2]) for dtype in DTYPES]
        assert torch.equal(*codes)


@pytest.mark.parametrize("kind", KINDS)
def test_the_bound_holds_and_is_not_vacuous(kind):
    """exact ≤ upper(y) for every entry, and upper(y) is within a few hundred times the
    plain product's real error of the exact value."""
    x, W, b = hard_inputs(4, kind)
    exact = exact_pre_activations(x, W, b)
    for dtype in DTYPES:
        bound = ProductBound.of(x, W, b, dtype)
        x_m, W_m, b_m = bound.augmented(x, W, b)
        upper = bound.upper(torch.addmm(b_m, x_m, W_m.t()))
        assert (exact <= upper).all()
        plain = torch.addmm(b.to(dtype), x.to(dtype), W.to(dtype).t()).float()
        error = (plain - exact).abs().max()
        assert (upper - exact).max() < 300 * max(float(error), 1e-6)
        rows = torch.arange(B)
        fp32 = bound.as_fp32(x.device)
        assert (exact <= fp32.upper(fp32.plain_upper(x @ W.t() + b, rows, None))).all()


def test_rows_the_candidates_do_not_settle_are_widened_then_recomputed_in_fp32(monkeypatch):
    calls = {"widened": 0, "fp32": 0}
    widened, in_fp32 = selection._widened_topk, selection.ProductBlock.in_fp32

    def count_widened(*args):
        calls["widened"] += 1
        return widened(*args)

    def count_fp32(self):
        calls["fp32"] += 1
        return in_fp32(self)

    monkeypatch.setattr(selection, "_widened_topk", count_widened)
    monkeypatch.setattr(selection.ProductBlock, "in_fp32", count_fp32)
    monkeypatch.setattr(selection, "MARGIN", 1.0)  # k extra candidates leave rows to widen here
    x, W, b = hard_inputs(5, "near-ties")
    exact = exact_pre_activations(x, W, b)
    sparse_encode(x, W, b, TopK(K), None, torch.bfloat16)
    assert calls == {"widened": 1, "fp32": 0}  # one call per block, settled from bf16
    # Huge dimensions make the bf16 bound loose: more entries can reach the k-th value than
    # WIDE_ROWS × the candidates (and FP32_SHARE of the row), so those rows' product is
    # recomputed in fp32.
    monkeypatch.setattr(selection, "WIDE_ROWS", 1.0)
    monkeypatch.setattr(selection, "FP32_SHARE", 0.0)
    x, W, b = hard_inputs(5, "huge-dims")
    exact = exact_pre_activations(x, W, b)
    v, i, _, _ = sparse_encode(x, W, b, TopK(K), None, torch.bfloat16)
    assert calls["fp32"] == 1
    assert torch.equal(dense((v, i)), dense(TopK(K)(exact)))


def wide_inputs(seed: int, kind: str, n: int = 4096, rows: int = B):
    """Hard inputs with enough latents to scan by threshold (16 · scan < n), and a loose bf16
    bound on every row: a norm in dimensions no latent reads, as LM outlier dimensions do."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, D, generator=g)
    W = torch.randn(n, D, generator=g) / D**0.5
    b = torch.randn(n, generator=g) * 0.05
    if kind == "duplicates":
        W[1::2], b[1::2] = W[0::2], b[0::2]
    elif kind == "mostly-negative":
        b -= 2.5
    if kind != "loud-dims":  # else the loud dimensions are read: large bf16 rounding errors
        W[:, :2] = 0.0
    x[:, :2] = 40.0
    return x, W, b


@pytest.mark.parametrize("kind", ["random", "duplicates", "mostly-negative", "loud-dims"])
def test_candidates_by_threshold_choose_what_the_rule_chooses(kind):
    x, W, b = wide_inputs(7, kind)
    exact = exact_pre_activations(x, W, b)
    bound = ProductBound.of(x, W, b, torch.bfloat16)
    xm, Wm, bm = bound.augmented(x, W, b)
    block = selection.ProductBlock(x, W, b, bound, torch.arange(B), torch.addmm(bm, xm, Wm.t()))
    reference = TopK(K)(exact)
    for scan in (20, 64, 200):  # a few rows miss (too few at or above t), most settle
        stats = {"unsettled": 0, "reach": 0}
        code = selection.certified_topk(block, K, scan, stats)
        positive_entries_equal(code, reference)
        assert torch.equal(code[0].clamp_min(0) > 0, reference[0] > 0)


def test_topk_scans_by_threshold_after_a_block_of_mostly_unsettled_rows(monkeypatch):
    scans: list[int] = []
    pick = TopK.pick

    def recording(self, block):
        scans.append(self.scan)
        return pick(self, block)

    monkeypatch.setattr(TopK, "pick", recording)
    x, W, b = wide_inputs(8, "random")
    exact = exact_pre_activations(x, W, b)
    v, i, _, _ = sparse_encode(x, W, b, TopK(K), None, torch.bfloat16, 16)
    assert scans[0] == 0 and all(s > 0 for s in scans[1:])  # the first block widened most rows
    positive_entries_equal((v, i), TopK(K)(exact))
    assert torch.equal(dense((v, i), W.shape[0]), dense(TopK(K)(exact), W.shape[0]))


def test_a_large_block_probes_its_first_rows_and_scans_the_rest(monkeypatch):
    calls: list[tuple[int, int]] = []
    pick = TopK._pick

    def recording(self, block):
        calls.append((block.y.shape[0], self.scan))
        return pick(self, block)

    monkeypatch.setattr(TopK, "_pick", recording)
    x, W, b = wide_inputs(9, "random", rows=4 * selection.PROBE_ROWS + 5)
    exact = exact_pre_activations(x, W, b)
    v, i, _, _ = sparse_encode(x, W, b, TopK(K), None, torch.bfloat16)  # one block
    assert calls[0] == (selection.PROBE_ROWS, 0)
    assert calls[1][0] == x.shape[0] - selection.PROBE_ROWS and calls[1][1] > 0
    positive_entries_equal((v, i), TopK(K)(exact))


def test_batchtopk_widens_a_row_that_holds_many_of_the_batch_slots():
    x, W, b = hard_inputs(6, "random")
    x[5] *= 30.0  # one row takes far more than 2k of the batch's k·B slots
    exact = exact_pre_activations(x, W, b)
    for dtype in DTYPES:
        for rows in (None, 1, 16):
            v, i, _, _ = sparse_encode(x, W, b, BatchTopK(K), None, dtype, rows)
            got = dense((v, i))
            assert int((got[5] > 0).sum()) > 2 * K
            assert torch.equal(got, dense(BatchTopK(K)(exact)))
            cut = exact.flatten().topk(K * B).values.min()
            assert torch.equal(got > 0, (exact >= cut) & (exact > 0))


@pytest.mark.parametrize("activation", ["topk", "batchtopk"])
@pytest.mark.parametrize("rows", [1, 7, B])
def test_blocked_encode_values_and_gradients_equal_the_plain_reference(activation, rows):
    x, W, b = hard_inputs(7, "random")
    rule = TopK(K) if activation == "topk" else BatchTopK(K)
    aux = TopK(5, columns=torch.arange(0, N, 3))
    results = []
    for encode, kwargs in ((sparse_encode, {"matmul_dtype": fast_matmul_dtype("cpu"),
                                            "rows_per_block": rows}),
                           (sparse_encode_reference, {})):
        xs, w, bb = (t.clone().requires_grad_() for t in (x, W, b))
        v, i, av, ai = encode(xs, w, bb, rule, aux, **kwargs)
        weights = torch.randn(N, generator=torch.Generator().manual_seed(9))
        code, aux_code = dense((v, i)), dense((av, ai))
        ((code * weights).sum() + (aux_code**2).sum()).backward()
        results.append((code.detach(), aux_code.detach(), xs.grad, w.grad, bb.grad))
    assert torch.equal(results[0][0] > 0, results[1][0] > 0)
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("objective", [
    {}, {"granularities": [8, 32, N]}, {"activation": "batchtopk"},
])
@pytest.mark.parametrize("dead_latents", [40, 150])  # AuxK's dense path, then its sparse path
def test_training_loss_on_the_default_path_matches_the_reference(objective, dead_latents,
                                                                 monkeypatch):
    monkeypatch.setattr(encoder_backward, "BLOCK_BYTES", 3 * N * 4)  # ~3 rows per block
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(6)) + 1.0
    cfg = SAEConfig(d_in=D, num_latents=N, k=K, activation=objective.get("activation", "topk"),
                    granularities=objective.get("granularities"))
    dead = torch.zeros(N, dtype=torch.bool)
    dead[N - dead_latents:] = True
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
    assert torch.equal(results[0][2] > 0, results[1][2] > 0)
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_auxk_dense_path_picks_the_exact_dead_latents():
    """AuxK's dense path (few dead latents) decodes from the exact top-k_aux of the dead."""
    from progressive_sae import objectives

    x, W, b = hard_inputs(8, "duplicates")  # ties at the cut: the lower latent wins
    cfg = SAEConfig(d_in=D, num_latents=N, k=K)
    sae = build_sae(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(W)
        sae.b_enc.copy_(b)
    dead_idx = torch.arange(40)
    got = objectives.dead_latents_decode(sae, x - sae.b_dec, dead_idx, 12)
    exact = exact_pre_activations(x, W, b)
    want = dense(TopK(12, columns=dead_idx)(exact)) @ sae.W_dec.detach()
    torch.testing.assert_close(got.detach(), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation", ["topk", "batchtopk", "jumprelu"])
def test_sae_encodes_at_every_granularity_and_mode_are_exact(activation):
    """Relative mode (k_G over the first G latents), prefix mode and full size, through
    `sae.encode` on the machine's default product, against the rules on exact values."""
    x, W, b = hard_inputs(9, "near-ties")
    sae = build_sae(SAEConfig(d_in=D, num_latents=N, k=K, activation=activation))
    with torch.no_grad():
        sae.W_enc.copy_(W)
        sae.b_enc.copy_(b)
        if activation == "batchtopk":
            sae.threshold.fill_(0.4)
        if activation == "jumprelu":
            sae.threshold.copy_(torch.rand(N, generator=torch.Generator().manual_seed(1)))
    sae.eval()
    x_c = x - sae.b_dec
    for g in (N, 96, 17):
        exact = exact_pre_activations(x_c, W[:g], b[:g])
        with torch.no_grad():
            relative = sae.encode(x, g, "relative")
            prefix = sae.encode(x, g, "prefix")
        want = dense(sae.rule_at(g)(exact), g)
        assert torch.equal(relative.to_dense(N)[:, :g], want), (activation, g)
        full = dense(sae.rule()(exact_pre_activations(x_c, W, b)))
        full[:, g:] = 0
        assert torch.equal(prefix.to_dense(N), full), (activation, g)


def fp32_block(x, W, b, columns=None):
    """A block of every row from a plain fp32 product (as AuxK's dense path makes one)."""
    bound = ProductBound.of(x, W, b, torch.float32)
    rows = torch.arange(x.shape[0])
    Wc, bc = (W, b) if columns is None else (W[columns], b[columns])
    return selection.ProductBlock(x, W, b, bound, rows,
                                  bound.plain_upper(x @ Wc.t() + bc, rows, columns), columns)


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
        selection.ProductBlock(x, W, b, bf16, block.rows, block.y).lower(block.y[:, :2].long())


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
        latents = selection.certified_topk_latents(fp32_block(x, W, b, columns), k)
        want = TopK(k, columns=columns)(exact)[1]

        def positive(chosen):
            return torch.zeros(B, N, dtype=torch.bool).scatter_(1, chosen, True) & (exact > 0)

        assert torch.equal(positive(latents), positive(want))
        if kind in ("random", "huge-dims", "mostly-negative"):
            assert sum(scored) <= B // 8  # nearly every row settled from the bounds
        if kind == "duplicates" and columns is None:
            assert sum(scored) > 0  # exact ties across the cut are decided exactly
