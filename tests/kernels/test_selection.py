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
    exact_topk,
    fast_matmul_dtype,
    selection,
    sparse_encode,
    sparse_encode_reference,
)
from progressive_sae.kernels.product_bound import (
    ProductBound,
    rounding_norms,
    strict_products,
)
from progressive_sae.objectives import sae_loss
from progressive_sae.sae import SAEConfig, build_sae
from tests.kernels.hard_inputs import (
    DTYPES,
    KINDS,
    B,
    D,
    K,
    N,
    dense,
    hard_inputs,
    positive_entries_equal,
    wide_inputs,
)


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
            monkeypatch.setattr(exact_topk, "MARGIN", margin)
            v, i, _, _ = sparse_encode(x, W, b, rule, None, torch.bfloat16, 16)
            positive_entries_equal((v, i), (ref_v.clamp_min(0), ref_i), name, kind, margin)


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
        x_m, W_m = bound.augmented(x, W, b)
        upper = bound.upper(x_m @ W_m.t())
        assert (exact <= upper).all()
        plain = torch.addmm(b.to(dtype), x.to(dtype), W.to(dtype).t()).float()
        error = (plain - exact).abs().max()
        assert (upper - exact).max() < 300 * max(float(error), 1e-6)
        rows = torch.arange(B)
        fp32 = bound.as_fp32(x.device)
        assert (exact <= fp32.upper(fp32.plain_upper(x @ W.t() + b, rows, None))).all()


def test_the_inputs_rounding_is_measured_not_assumed():
    """bf16 products carry the measured rounding of x and W (two columns), fp32 ones one
    column; measured, the bound is well inside the worst case on random inputs."""
    x, W, b = hard_inputs(4, "random")
    bound = ProductBound.of(x, W, b, torch.bfloat16)
    x_m, W_m = bound.augmented(x, W, b)
    assert x_m.shape[1] == W_m.shape[1] == D + 3
    terms = x_m[:, D:-1].float() @ W_m[:, D:-1].float().t()
    worst = bound.row_terms().unsqueeze(1) * bound.latent_terms()
    assert (terms < 0.75 * worst).all()
    assert ProductBound.of(x, W, b, torch.float32).augmented(x, W, b)[0].shape[1] == D + 2


def test_rounding_norms_bound_the_residual_and_fall_back_where_squares_underflow():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 64, generator=g)
    m[2] *= 1e-25  # residuals ~1e-27: their squares underflow in fp32
    rounded = m.to(torch.bfloat16)
    worst = (2.0**-8 * m.double().norm(dim=1)).float()
    got = rounding_norms(m, rounded, worst)
    true = (m.double() - rounded.double()).norm(dim=1)
    assert (got.double() * 1.001 >= true).all() and (got <= worst).all()
    assert got[2] == worst[2] and (got[[0, 1, 3, 4, 5]] < worst[[0, 1, 3, 4, 5]]).all()


CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                    reason="needs a CUDA device"))


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_fast_product_accumulates_in_fp32_and_rounds_once(dtype, device):
    """What the bound assumes of the matmul kernel: fp32 sums, the output rounded once. The
    first half of each row's products is positive and cancelled by the second half: a
    kernel that rounded a partial sum to bf16 would be off by ~2⁻⁹·Σ|x̃W̃|/2, ~20 times what
    is allowed here. (On CUDA, as the encoder runs it: `strict_products`, TF32 off.)"""
    g = torch.Generator().manual_seed(0)
    rows, d, n, half = 256, 579, 4096, 289
    x, W = torch.rand(rows, d, generator=g), torch.rand(n, d, generator=g)
    x[:, half:2 * half] = x[:, :half]
    W[:, half:2 * half] = -W[:, :half] * (1 + 1e-3 * torch.randn(n, half, generator=g))
    xq, Wq = x.to(dtype), W.to(dtype)
    with strict_products(torch.device(device)):
        y = (xq.to(device) @ Wq.to(device).t()).cpu().double()
    exact = xq.double() @ Wq.double().t()
    magnitude = xq.double().abs() @ Wq.double().abs().t()
    u_out = 2.0**-8 if dtype == torch.bfloat16 else 2.0**-24
    allowed = u_out * exact.abs() * (1 + 1e-6) + (d + 3) * 2.0**-24 * magnitude
    assert ((y - exact).abs() <= allowed).all()
    assert (exact.abs() < 0.05 * magnitude).float().mean() > 0.5  # the premise: cancellation


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
    got = objectives.dead_latents_decode(sae, x, dead_idx, 12)
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
