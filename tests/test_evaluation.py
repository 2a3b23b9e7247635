"""One SAE at one granularity on every metric: consistent with the single-metric functions."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from progressive_sae import SAEConfig, build_sae
from progressive_sae.data import TensorSource
from progressive_sae.evaluation import EvalSet, evaluate_fidelity
from progressive_sae.lm import LanguageModel
from progressive_sae.metrics import (
    activation_mass,
    evaluate_reconstruction,
    recaptured_loss,
    representational_similarity,
)
from tests.helpers import one_line_error
from tests.lm.toy_text import BOS, EOS, PAD, toy_tokenizer


def tiny_lm():
    tokenizer = toy_tokenizer()
    model = GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tokenizer), n_positions=32, n_embd=16, n_layer=2, n_head=2,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)).eval()
    return LanguageModel(model=model, tokenizer=tokenizer, name="tiny"), len(tokenizer)


@pytest.mark.parametrize("mode", ["relative", "prefix"])
def test_fidelity_agrees_with_each_metric_computed_alone(mode):
    lm, vocab = tiny_lm()
    ids = torch.randint(4, vocab, (5, 12))
    ids[:, 0] = BOS
    x = torch.randn(300, 16)
    sae = build_sae(SAEConfig(d_in=16, num_latents=64, k=8))
    evalset = EvalSet(TensorSource(x), rsa_rows=100, lm=lm, input_ids=ids, hook="layers.1",
                      windows_per_pass=2)
    f = evaluate_fidelity(sae, evalset, 32, mode)
    alone = evaluate_reconstruction(sae, x, 32, mode)
    assert (f.fvu, f.l0, f.dead_fraction) == (alone.fvu, alone.l0, alone.dead_fraction)
    assert f.k == (4 if mode == "relative" else 8)
    with torch.no_grad():
        rsa = representational_similarity(x[:100], sae(x[:100], 32, mode))
    assert f.rsa == pytest.approx(rsa, abs=1e-12)
    ce = recaptured_loss(lm, sae, ids, "layers.1", 32, mode)
    assert f.ce_ratio == pytest.approx(ce.ratio, rel=1e-6)
    assert f.fraction_recovered == pytest.approx(ce.fraction_recovered, rel=1e-6)


def test_without_an_lm_the_lm_metrics_are_absent():
    sae = build_sae(SAEConfig(d_in=8, num_latents=32, k=4))
    f = evaluate_fidelity(sae, EvalSet(TensorSource(torch.randn(50, 8))))
    assert f.granularity == 32 and f.ce_ratio is None and 0 < f.fvu
    one_line_error(lambda: EvalSet(TensorSource(torch.randn(5, 8)), lm=object()), "input_ids")


def test_activation_mass_is_a_cumulative_share_ending_at_one():
    curve = activation_mass(torch.tensor([3.0, 1.0, 0.0, 4.0]))
    assert torch.allclose(curve, torch.tensor([0.375, 0.5, 0.5, 1.0], dtype=torch.float64))
    one_line_error(lambda: activation_mass(torch.zeros(3)), "ever fired")
