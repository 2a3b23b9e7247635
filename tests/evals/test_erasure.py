"""SCR and TPP on constructed SAEs whose latents carry known concepts (no LM)."""

from __future__ import annotations

import json

import numpy as np
import torch

from progressive_sae.evals.common import fieller_interval
from progressive_sae.evals.datasets.labelled import TextTask
from progressive_sae.evals.datasets.offline import SpuriousTask
from progressive_sae.evals.erasure.ablation import ablate
from progressive_sae.evals.erasure.config import ErasureConfig
from progressive_sae.evals.erasure.evaluate import erase_saes
from progressive_sae.evals.probing.pooling import TextActivations, pooled_latents
from progressive_sae.sae import SAEConfig, TopKSAE

D, N, K, TOKENS = 12, 24, 6, 4
CONFIG = ErasureConfig(n_values=[1, 2, 5], resamples=200)


def concept_sae() -> TopKSAE:
    """Latents 0..3 read (and write) +dimension 0..3, latents 4..7 −dimension 0..3 (the
    concepts); the others read random mixes of the noise dimensions 4..11."""
    sae = TopKSAE(SAEConfig(d_in=D, num_latents=N, k=K))
    w = torch.randn(N, D, generator=torch.Generator().manual_seed(2))
    w[:, :4] = 0
    w[:8] = torch.cat([torch.eye(D)[:4], -torch.eye(D)[:4]])
    w = w / w.norm(dim=1, keepdim=True)
    with torch.no_grad():
        sae.W_enc.copy_(w)
        sae.W_dec.copy_(w)
    return sae


def activations(concepts: np.ndarray, seed: int = 0) -> TextActivations:
    """One text per row of `concepts` [texts, 4]: its tokens carry 3·concept on dims 0..3."""
    rng = np.random.default_rng(seed)
    n = len(concepts)
    tokens = rng.normal(0, 0.5, (n, TOKENS, D)).astype(np.float32)
    tokens[:, :, :4] = 3.0 * concepts[:, None, :]
    owner = torch.arange(n).repeat_interleave(TOKENS)
    return TextActivations(tuple(f"t{i}" for i in range(n)),
                           torch.from_numpy(tokens.reshape(-1, D)), owner,
                           torch.full((n,), float(TOKENS)), "layers.0")


def test_tpp_ablating_a_class_latent_drops_its_probe_to_chance_and_no_other():
    classes = np.arange(900) % 3
    acts = activations(np.eye(4)[classes])  # class c lights concept c
    texts = acts.texts
    task = TextTask("classes", ("a", "b", "c"), texts[:600], classes[:600], texts[600:],
                    classes[600:])
    result = erase_saes({"sae": concept_sae()}, acts, None, task, None, CONFIG)
    clean = result.tpp_setup["clean_balanced_accuracy"]
    assert list(clean) == ["a", "b", "c"] and min(clean.values()) > 0.99
    one = result.select("tpp")[0]
    assert [s.n for s in result.select("tpp")] == [1, 2, 5]
    # One latent per class holds its concept: ablating it leaves its probe at chance.
    assert 0.35 <= one.parts["intended_drop"] <= 0.65
    assert abs(one.parts["unintended_drop"]) < 0.05
    assert one.value.value > 0.35 and one.value.low > 0.25
    json.dumps(result.to_dict(), allow_nan=False)


def spurious(n_train: int = 800, n_test: int = 400, b_scale: float = 1.0
             ) -> tuple[TextActivations, SpuriousTask]:
    rng = np.random.default_rng(3)
    cells = np.arange(n_train + n_test) % 4
    a, b = cells // 2, cells % 2
    concepts = np.zeros((len(cells), 4))
    concepts[:, 0], concepts[:, 1] = 2 * a - 1, b_scale * (2 * b - 1)  # one latent per sign
    acts = activations(concepts, seed=4)
    order = rng.permutation(len(cells))
    tr, te = order[:n_train], order[n_train:]
    texts = np.array(acts.texts)
    task = SpuriousTask("pair", ("A", "B"), (("a0", "a1"), ("b0", "b1")),
                        tuple(texts[tr]), a[tr], b[tr], tuple(texts[te]), a[te], b[te])
    return acts, task


def test_scr_ablating_the_spurious_latent_recovers_the_oracle():
    """Which attribute SAEBench's briefly trained biased probe leans on depends on its init;
    in the direction it has not already learnt (denominator > 0), ablating the two latents
    of the other attribute (one per sign), and nothing else, recovers the oracle."""
    acts, task = spurious()
    result = erase_saes({"sae": concept_sae()}, acts, task, None, None, CONFIG)
    dirs = result.scr_setup["pairs"][0]["directions"]
    assert all(d["A_oracle"] == 1.0 and not d["gated"] for d in dirs)
    open_dirs = [d for d in dirs if not d["guarded"]]
    assert open_dirs and all(d["A_base"] < 0.9 for d in open_dirs)
    for d in open_dirs:
        metric = f"scr_dir{d['direction']}"
        at_two = next(s for s in result.select(metric) if s.n == 2)
        assert at_two.value.value > 0.95 and at_two.parts["A_ablated"] > 0.97
        # One pair: its mean is its score; the pair's own row carries Fieller's interval.
        own = next(s for s in result.select(metric, "pair") if s.n == 2)
        assert own.value.value == at_two.value.value
        assert own.value.low <= own.value.value <= own.value.high
    chosen = result.select("scr")
    assert [s.n for s in chosen] == [1, 2, 5]
    assert result.scr_setup["pairs"][0]["metric_direction"] == min(
        dirs, key=lambda d: d["A_base"])["direction"]


def test_scr_guard_scores_zero_and_leaves_the_mean_unbounded():
    """Attribute A is 3x stronger than B: the biased probe (A = B on its texts) reads A, so
    on A's labels A_base = A_oracle and direction 1 has no room to improve. SAEBench scores
    it 0 (A_oracle − A_base < 0.001); its ratio has no interval, nor has the mean over pairs
    that includes it. Direction 2 (evaluate B) is unaffected and is the reported one."""
    acts, task = spurious(b_scale=0.3)
    result = erase_saes({"sae": concept_sae()}, acts, [task], None, None, CONFIG)
    dir1, dir2 = result.scr_setup["pairs"][0]["directions"]
    assert dir1["guarded"] and not dir2["guarded"] and not dir1["gated"]
    assert result.scr_setup["pairs"][0]["metric_direction"] == 2
    for s in result.select("scr_dir1"):
        assert s.value.value == 0.0 and np.isnan(s.value.low) and np.isnan(s.value.high)
        assert s.parts["guarded_pairs"] == 1.0
    assert all(s.parts["guarded_pairs"] == 0.0 for s in result.select("scr"))
    json.dumps(result.to_dict(), allow_nan=False)


def test_fieller_interval_is_the_normal_interval_for_a_constant_denominator_and_unbounded_at_zero():
    """With v ≡ 1 the ratio is mean(u) and Fieller's set is mean(u) ± z·sd(u)/√n; with
    mean(v) inside its own noise there is no bounded set."""
    rng = np.random.default_rng(0)
    u = rng.normal(0.3, 1.0, 400)
    low, high = fieller_interval(u, np.ones(400), 0.95)
    half = 1.959964 * u.std(ddof=1) / np.sqrt(400)
    assert abs(low - (u.mean() - half)) < 1e-5 and abs(high - (u.mean() + half)) < 1e-5
    v = rng.choice([-1.0, 0.0, 1.0], 400)
    v -= v.mean()  # denominator exactly 0 on average
    assert fieller_interval(u, v, 0.95) is None


def test_pooled_ablation_equals_ablating_every_token_then_pooling():
    acts, _ = spurious(8, 8)
    sae = concept_sae()
    latents = np.array([0, 5, 7])
    code = sae.encode(acts.tokens)
    dense = code.to_dense(N)
    per_token = acts.tokens - dense[:, latents] @ sae.W_dec[latents]
    pooled_after = torch.zeros(len(acts.texts), D).index_add_(0, acts.text_of_token, per_token)
    pooled_after /= acts.counts[:, None]
    z = pooled_latents(sae, acts).numpy()
    fast = ablate(acts.pooled.numpy(), z, sae.W_dec.detach().numpy(), latents)
    np.testing.assert_allclose(fast, pooled_after.detach().numpy(), atol=1e-5)


def test_headline_picks_each_saes_full_size():
    classes = np.arange(150) % 3
    acts = activations(np.eye(4)[classes])
    task = TextTask("classes", ("a", "b", "c"), acts.texts[:90], classes[:90], acts.texts[90:],
                    classes[90:])
    result = erase_saes({"sae": concept_sae()}, acts, None, task, [12], CONFIG)
    full = result.headline("tpp", n=1)
    assert list(full) == ["sae"] and full["sae"] == result.select("tpp")[0].value
    half = result.headline("tpp", n=1, granularity=12, mode="prefix")
    assert half["sae"] == next(s.value for s in result.select("tpp")
                               if s.n == 1 and s.granularity == 12 and s.mode == "prefix")
