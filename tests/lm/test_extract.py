"""Extraction: text windows → LM activations → cache, resumable to a byte-identical cache."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from progressive_sae.data.cache import CachedActivations
from progressive_sae.lm.extract import auto_batch_size, extract
from progressive_sae.lm.text import TextConfig, iter_windows
from tests.helpers import one_line_error
from tests.lm.toy_text import BOS, VOCAB, doc, toy_tokenizer

D = 8


class FakeLM:
    """A stand-in LM: a fixed embedding table and a causal function of the token ids."""

    def __init__(self, tokenizer=None, fail_after=None):
        self.tokenizer = tokenizer or toy_tokenizer()
        self.name = "fake-lm"
        self.table = torch.randn(len(VOCAB), D, generator=torch.Generator().manual_seed(0))
        self.calls = 0
        self.fail_after = fail_after


class Killed(Exception):
    pass


def fake_activations(lm, input_ids, hook):
    """Causal and batch-invariant: row t depends on tokens t-1 and t and on position t."""
    if lm.fail_after is not None and lm.calls >= lm.fail_after:
        raise Killed
    lm.calls += 1
    layer = int(hook.split(".")[1])
    current = lm.table[input_ids]
    previous = torch.cat([torch.zeros_like(current[:, :1]), current[:, :-1]], dim=1)
    position = torch.arange(input_ids.shape[1], dtype=torch.float32)[None, :, None]
    return current * (1 + position) + previous * layer


def expected_rows(config, lm, hook, max_tokens, exclude_bos=True):
    """Each window run alone, BOS dropped, concatenated and cut at max_tokens."""
    acts, table = [], []
    for seq, window in enumerate(iter_windows(config, lm.tokenizer)):
        ids = torch.from_numpy(window)[None]
        rows = fake_activations(SimpleNamespace(fail_after=None, calls=0, table=lm.table),
                                ids, hook)[0]
        start = 1 if exclude_bos and window[0] == BOS else 0
        acts.append(rows[start:])
        table += [(seq, pos, int(window[pos])) for pos in range(start, len(window))]
    return torch.cat(acts)[:max_tokens], np.array(table[:max_tokens])


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    docs = [doc(3 * i, 1 + (7 * i) % 11) for i in range(60)]
    path.write_text("\n\n".join(docs) + "\n")
    return TextConfig(str(path), ctx=6)


def directory_bytes(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def run(lm, config, out, **kw):
    args = {"hook": "layers.1", "max_tokens": 150, "batch_size": 4, "rows_per_shard": 17,
            "dtype": "float32", "activation_fn": fake_activations, "progress": False, **kw}
    return extract(lm, config, out_dir=out, **args)


def test_extract_writes_exactly_the_expected_rows(tmp_path, corpus):
    lm = FakeLM()
    manifest_file = run(lm, corpus, tmp_path / "c")
    acts, table = expected_rows(corpus, lm, "layers.1", 150)
    cache = CachedActivations(tmp_path / "c", shuffle_buffer=0)
    assert len(cache) == 150 and cache.d_in == D
    assert torch.equal(cache.rows(0, 150), acts)
    assert np.array_equal(cache.token_table(0, 150), table)
    assert 0 not in table[:, 1]  # BOS positions dropped
    manifest = json.loads(manifest_file.read_text())
    assert manifest["model"] == "fake-lm" and manifest["hook"] == "layers.1"
    assert manifest["ctx"] == 6 and manifest["exclude_bos"] and manifest["bos_prepended"]
    assert manifest["text"] == corpus.to_dict() and manifest["max_tokens"] == 150
    assert manifest["batch_size"] == 4 and manifest["text_exhausted"] is False
    assert [s["rows"] for s in manifest["shards"]] == [17] * 8 + [14]
    assert lm.calls == -(-30 // 4)  # 150 rows = 30 windows of 5 kept positions

    with_bos = run(FakeLM(), corpus, tmp_path / "bos", exclude_bos=False, max_tokens=40)
    acts, table = expected_rows(corpus, lm, "layers.1", 40, exclude_bos=False)
    cache = CachedActivations(with_bos.parent, shuffle_buffer=0)
    assert torch.equal(cache.rows(0, 40), acts) and np.array_equal(cache.token_table(0, 40), table)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_caches(tmp_path, corpus, dtype):
    lm = FakeLM()
    run(lm, corpus, tmp_path / "c", dtype=dtype, max_tokens=60)
    acts, _ = expected_rows(corpus, lm, "layers.1", 60)
    rows = CachedActivations(tmp_path / "c", shuffle_buffer=0).rows(0, 60)
    assert torch.equal(rows, acts.to(getattr(torch, dtype)).float())


def test_truncated_heldout_windows(tmp_path, corpus):
    config = TextConfig(corpus.source, ctx=4, mode="truncate", heldout_fraction=0.3,
                        part="heldout")
    lm = FakeLM()
    with pytest.warns(UserWarning, match="ran out"):
        run(lm, config, tmp_path / "c", max_tokens=10_000)
    acts, table = expected_rows(config, lm, "layers.1", 10_000)
    cache = CachedActivations(tmp_path / "c", shuffle_buffer=0)
    assert len(cache) == len(acts) and torch.equal(cache.rows(0, len(cache)), acts)
    assert np.array_equal(cache.token_table(0, len(cache)), table)


@pytest.mark.parametrize("fail_after", [1, 2, 4, 6])
def test_interrupted_extraction_resumes_byte_identical(tmp_path, corpus, fail_after):
    run(FakeLM(), corpus, tmp_path / "whole")
    with pytest.raises(Killed):
        run(FakeLM(fail_after=fail_after), corpus, tmp_path / "cut")
    partial = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert not partial["complete"]
    resumed = FakeLM()
    run(resumed, corpus, tmp_path / "cut", batch_size=None)  # the recorded batch size
    assert directory_bytes(tmp_path / "whole") == directory_bytes(tmp_path / "cut")
    assert resumed.calls <= 8 - fail_after + 1  # finished batches are not run again
    again = FakeLM()
    run(again, corpus, tmp_path / "cut")  # complete: nothing to do
    assert again.calls == 0


def test_text_that_runs_out_and_automatic_batch_size(tmp_path, corpus):
    lm = FakeLM()
    with pytest.warns(UserWarning, match="ran out"):
        run(lm, corpus, tmp_path / "c", max_tokens=10**6, batch_size=None)
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    windows = list(iter_windows(corpus, lm.tokenizer))
    assert manifest["text_exhausted"] is True
    assert manifest["total_rows"] == sum(len(w) - 1 for w in windows)
    assert manifest["batch_size"] == auto_batch_size(lm, corpus.ctx)
    assert 1 <= manifest["batch_size"] <= 64
    assert manifest["batch_size"] & (manifest["batch_size"] - 1) == 0


def test_mismatched_or_bad_extractions_are_refused(tmp_path, corpus):
    with pytest.raises(Killed):
        run(FakeLM(fail_after=3), corpus, tmp_path / "c")
    one_line_error(lambda: run(FakeLM(), corpus, tmp_path / "c", hook="layers.2"),
                   "hook=\"layers.1\"", "hook=\"layers.2\"")
    one_line_error(lambda: run(FakeLM(), corpus, tmp_path / "c", max_tokens=99), "max_tokens")
    other_text = TextConfig(corpus.source, ctx=7)
    one_line_error(lambda: run(FakeLM(), other_text, tmp_path / "c"), "ctx")
    one_line_error(lambda: run(FakeLM(), corpus, tmp_path / "c", dtype="float16"), "dtype")
    one_line_error(lambda: run(FakeLM(), corpus, tmp_path / "x", max_tokens=0), "max_tokens=0")
    one_line_error(lambda: run(FakeLM(), corpus, tmp_path / "x", dtype="int8"), "dtype='int8'")
    one_line_error(lambda: run(FakeLM(), corpus, tmp_path / "x", batch_size=0), "batch_size=0")
    one_line_error(lambda: run(SimpleNamespace(tokenizer=None), corpus, tmp_path / "x"),
                   "tokenizer")
    one_line_error(lambda: run(FakeLM(), corpus, tmp_path / "x",
                               activation_fn=lambda lm, ids, hook: torch.zeros(3, D)),
                   "expected [batch, tokens, d]")
    missing = TextConfig(str(tmp_path / "nothing.txt"))
    one_line_error(lambda: run(FakeLM(), missing, tmp_path / "y"), "does not exist")
    # A run that stopped before its first shard binds nothing: other settings may start over.
    with pytest.raises(Killed):
        run(FakeLM(fail_after=0), corpus, tmp_path / "z")
    run(FakeLM(), corpus, tmp_path / "z", hook="layers.2", max_tokens=20)
    assert json.loads((tmp_path / "z" / "manifest.json").read_text())["hook"] == "layers.2"


def test_real_hooks_on_a_tiny_gpt2(tmp_path, corpus):
    from transformers import GPT2Config, GPT2LMHeadModel

    from progressive_sae.lm import LanguageModel, activations

    tokenizer = toy_tokenizer()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tokenizer), n_positions=16, n_embd=16, n_layer=2, n_head=2,
        bos_token_id=BOS, eos_token_id=2, pad_token_id=3,
    )).eval()
    lm = LanguageModel(model, tokenizer, "tiny-gpt2")
    config = TextConfig(corpus.source, ctx=6, mode="truncate")  # windows of unequal lengths
    extract(lm, config, "layers.0", tmp_path / "c", max_tokens=80, batch_size=5,
            rows_per_shard=32, dtype="float32", progress=False)
    expected = []
    for window in iter_windows(config, tokenizer):
        expected.append(activations(lm, torch.from_numpy(window)[None], "layers.0")[0, 1:])
    expected = torch.cat(expected)[:80]
    rows = CachedActivations(tmp_path / "c", shuffle_buffer=0).rows(0, 80)
    torch.testing.assert_close(rows, expected, rtol=1e-5, atol=1e-5)
