"""Recaptured LM loss on a tiny GPT-2: its three cross-entropies and the derived ratios."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from progressive_sae import SAEConfig, build_sae
from progressive_sae.lm import LanguageModel, spliced_cross_entropy
from progressive_sae.metrics import recaptured_loss
from tests.lm.toy_text import BOS, EOS, PAD, toy_tokenizer


def test_recaptured_loss_brackets_the_sae_between_clean_and_zero_ablation():
    torch.manual_seed(0)
    tokenizer = toy_tokenizer()
    model = GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tokenizer), n_positions=32, n_embd=16, n_layer=2, n_head=2,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)).eval()
    lm = LanguageModel(model=model, tokenizer=tokenizer, name="tiny")
    ids = torch.randint(4, len(tokenizer), (6, 20))
    ids[:, 0] = BOS
    sae = build_sae(SAEConfig(d_in=16, num_latents=32, k=4))

    zero_sae = build_sae(SAEConfig(d_in=16, num_latents=32, k=4))
    with torch.no_grad():
        zero_sae.W_dec.zero_()
    dead = recaptured_loss(lm, zero_sae, ids, "layers.1")
    assert dead.ce_spliced == pytest.approx(dead.ce_zero, rel=1e-6)
    assert dead.fraction_recovered == pytest.approx(0.0, abs=1e-6)

    r = recaptured_loss(lm, sae, ids, "layers.1", granularity=16)
    clean = spliced_cross_entropy(lm, ids, "layers.1", None, exclude_bos=True)
    assert r.ce_clean == pytest.approx(clean.mean) and r.tokens == clean.count == 6 * 18
    assert r.ratio == pytest.approx(r.ce_clean / r.ce_spliced)
    assert r.difference == pytest.approx(r.ce_spliced - r.ce_clean)
    expected = (r.ce_zero - r.ce_spliced) / (r.ce_zero - r.ce_clean)
    assert r.fraction_recovered == pytest.approx(expected)
