"""The offline default: corpus, tokenizer, tiny LM training, bigram baseline, shipped model."""

import dataclasses
import json
import math
import sysconfig
from pathlib import Path

import pytest
import torch

from progressive_sae.errors import PSAEError
from progressive_sae.lm.offline import (
    DEFAULT_LM_PATH,
    build_corpus,
    default_lm_available,
    load_offline_lm,
)
from progressive_sae.lm.offline.bigram import (
    best_bigram_cross_entropy,
    bigram_counts,
    bigram_cross_entropy,
)
from progressive_sae.lm.offline.config import LMTrainConfig
from progressive_sae.lm.offline.corpus import (
    docstrings_of_source,
    is_heldout,
    stdlib_documents,
    topic_documents,
)
from progressive_sae.lm.offline.tokenizer import (
    encode_documents,
    load_tokenizer,
    train_tokenizer,
)
from progressive_sae.lm.offline.train_lm import (
    FIRST_WINDOWS,
    heldout_cross_entropy,
    make_model,
    train_offline_lm,
)
from progressive_sae.lm.offline.windows import token_stream, windows_at


@pytest.fixture(scope="module")
def corpus():
    return build_corpus()


def test_corpus_size_and_disjoint_split(corpus):
    train_names = {d.name for d in corpus.train}
    held_names = {d.name for d in corpus.heldout}
    assert len(train_names) == len(corpus.train) and len(held_names) == len(corpus.heldout)
    assert not train_names & held_names
    n = len(corpus.train) + len(corpus.heldout)
    assert 0.02 < len(corpus.heldout) / n < 0.10
    total = corpus.train_chars + corpus.heldout_chars
    assert 1_000_000 < total < 5_000_000, total
    assert any(name.startswith("topics/") for name in train_names)
    assert any(name.startswith("stdlib/") for name in train_names)
    assert not any("/test/" in name or "idlelib" in name for name in train_names | held_names)
    # The split is a property of each name alone.
    assert all(is_heldout(name, corpus.heldout_fraction) for name in held_names)
    assert not any(is_heldout(name, corpus.heldout_fraction) for name in train_names)


def test_corpus_is_deterministic(corpus):
    topics_a, topics_b = topic_documents(), topic_documents()
    assert topics_a == topics_b and len(topics_a) > 50
    json_root = Path(sysconfig.get_paths()["stdlib"]) / "json"
    a, b = stdlib_documents(json_root), stdlib_documents(json_root)
    assert a == b and [d.name for d in a] == sorted(d.name for d in a)
    assert corpus.fingerprint() == corpus.fingerprint()
    assert corpus.summary()["train_documents"] == len(corpus.train)


def test_docstrings_in_source_order():
    src = b'"""Module doc."""\nclass A:\n    """Class doc.\n\n    More."""\n' \
          b'    def f(self):\n        """Method doc."""\n\ndef g():\n    pass\n' \
          b'async def h():\n    """Async doc."""\n'
    assert docstrings_of_source(src) == ["Module doc.", "Class doc.\n\nMore.", "Method doc.",
                                         "Async doc."]


@pytest.fixture(scope="module")
def small_tokenizer(corpus):
    return train_tokenizer([d.text for d in corpus.train[:40]], vocab_size=600)


def test_tokenizer_round_trip(small_tokenizer, tmp_path):
    tok = small_tokenizer
    assert len(tok) == 600
    assert tok.bos_token_id == tok.eos_token_id == tok.pad_token_id == 0
    texts = ["def f(x):\n    return x ** 2  # square\n", "Ünïcödé — 😀 and tabs\t\tend",
             "  leading spaces and trailing  ", ""]
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    assert encode_documents(tok, texts) == [
        tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    tok.save_pretrained(str(tmp_path))
    again = load_tokenizer(tmp_path)
    for text in texts:
        assert again(text, add_special_tokens=False)["input_ids"] == tok(
            text, add_special_tokens=False)["input_ids"]
    assert again.bos_token == "<|endoftext|>"


def test_config_errors_name_the_field():
    with pytest.raises(PSAEError, match="n_head"):
        LMTrainConfig(n_embd=30, n_head=4).validate()
    with pytest.raises(PSAEError, match="attn_implementation"):
        LMTrainConfig(attn_implementation="flash").validate()
    assert LMTrainConfig.from_dict(LMTrainConfig().to_dict()) == LMTrainConfig()


def test_windows_start_with_bos():
    stream = torch.arange(1, 12)
    w = windows_at(stream, ctx=4, offset=1, bos_id=0)
    assert w.tolist() == [[0, 2, 3, 4, 5], [0, 6, 7, 8, 9]]
    assert token_stream([[5, 6], [7]], sep_id=0).tolist() == [0, 5, 6, 0, 7]


def test_bigram_matches_hand_computation():
    V = 3
    inputs = torch.tensor([0, 0, 1, 2, 0])
    targets = torch.tensor([1, 1, 2, 0, 2])
    counts = bigram_counts(inputs, targets, V)
    assert counts.tolist() == [[0, 2, 1], [0, 0, 1], [1, 0, 0]]
    k = 0.5
    held_in, held_out = torch.tensor([0, 1, 2]), torch.tensor([1, 0, 0])
    # P(1|0) = (2+.5)/(3+1.5), P(0|1) = (0+.5)/(1+1.5), P(0|2) = (1+.5)/(1+1.5)
    expected = -(math.log(2.5 / 4.5) + math.log(0.5 / 2.5) + math.log(1.5 / 2.5)) / 3
    assert bigram_cross_entropy(counts, held_in, held_out, k) == pytest.approx(expected, 1e-12)
    ce, best_k = best_bigram_cross_entropy(counts, held_in, held_out, ks=(0.5, 5.0))
    assert best_k in (0.5, 5.0)
    assert ce == min(bigram_cross_entropy(counts, held_in, held_out, kk) for kk in (0.5, 5.0))


TINY = dict(n_layer=1, n_embd=32, n_head=2, n_positions=32, vocab_size=512,
            max_train_documents=40, max_heldout_documents=6, max_heldout_windows=48,
            batch_size=8, lr=3e-3, warmup_steps=5, eval_every=20, log_every=20,
            checkpoint_seconds=1e9, threads=1)


def test_tiny_training_learns_resumes_and_loads(corpus, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "lm"
    lines = []
    first = train_offline_lm(LMTrainConfig(**TINY, max_steps=40, keep_checkpoint=True), out,
                             corpus=corpus, progress=False, log=lines.append)
    assert first["steps"] == 40
    assert (out / "checkpoint" / "state.json").exists()
    with pytest.raises(PSAEError, match="n_embd"):  # the model may not change on resume
        train_offline_lm(LMTrainConfig(**{**TINY, "n_embd": 64}, max_steps=80), out,
                         corpus=corpus, progress=False, log=lines.append)
    lines.clear()
    metrics = train_offline_lm(LMTrainConfig(**TINY, max_steps=80), out, corpus=corpus,
                               progress=False, log=lines.append)
    assert any(line.startswith("resumed at step 40") for line in lines)
    assert metrics["steps"] == 80 and metrics["tokens_trained"] == 80 * 8 * 32
    assert not (out / "checkpoint").exists()
    history = metrics["history"]
    assert history[0]["step"] == 0 and history[0]["heldout_ce"] > math.log(512) - 0.5
    assert metrics["heldout_ce"] < history[0]["heldout_ce"] - 0.5
    assert math.isfinite(metrics["bigram_heldout_ce"])
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["heldout_ce"] == pytest.approx(metrics["heldout_ce"])

    # The plain transformers path, offline; weights stored in bf16.
    model = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True).float()
    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert model.config.bos_token_id == model.config.eos_token_id == tok.bos_token_id == 0
    assert model.config.vocab_size == len(tok) == 512
    ids = torch.tensor([[tok.bos_token_id] + tok("def f(x):", add_special_tokens=False)[
        "input_ids"]])
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=ids).logits).all()


def _heldout_windows(tokenizer, corpus, ctx, n):
    ids = encode_documents(tokenizer, [d.text for d in corpus.heldout])
    return windows_at(token_stream(ids, tokenizer.bos_token_id), ctx, 0, tokenizer.bos_token_id)[:n]


@pytest.mark.skipif(not default_lm_available(), reason="no shipped offline LM")
def test_shipped_checkpoint_beats_bigram_and_matches_its_metrics(corpus):
    metrics = json.loads((DEFAULT_LM_PATH / "metrics.json").read_text())
    assert metrics["heldout_ce"] < metrics["bigram_heldout_ce"]
    assert (DEFAULT_LM_PATH / "model.safetensors").stat().st_size <= 10 * 2**20
    model, tok = load_offline_lm()
    assert next(model.parameters()).dtype == torch.float32
    ctx = model.config.n_positions
    windows = _heldout_windows(tok, corpus, ctx, FIRST_WINDOWS)
    ce = heldout_cross_entropy(model, windows)
    if metrics["corpus"]["fingerprint"] == corpus.fingerprint():
        # Same corpus: the very same windows as at export time.
        assert ce == pytest.approx(metrics["heldout_first_windows"]["ce"], abs=0.02)
    else:  # another CPython: other docstrings, so only a loose check
        assert ce < metrics["bigram_heldout_ce"] + 1.0


def test_model_init_is_seeded_without_touching_the_global_rng():
    cfg = LMTrainConfig(vocab_size=64, n_positions=16, n_embd=32, n_layer=1, n_head=2)
    state = torch.random.get_rng_state()
    first, second = make_model(cfg, special_id=0), make_model(cfg, special_id=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)
    other = make_model(dataclasses.replace(cfg, seed=cfg.seed + 1), special_id=0)
    assert not torch.equal(other.transformer.wte.weight, first.transformer.wte.weight)
    # GPT-2's scheme: residual projections scaled down by √(2·n_layer), unit LayerNorm gains.
    block = first.transformer.h[0].mlp
    assert float(block.c_proj.weight.detach().std()) < 0.8 * float(block.c_fc.weight.detach().std())
    assert torch.equal(first.transformer.ln_f.weight, torch.ones(32))
