"""Latent records: equal to a brute-force dense computation, resumable, saved and loaded."""

import numpy as np
import pytest
import torch

from progressive_sae.data.cache import CachedActivations
from progressive_sae.interp.collect import collect_records, priority
from progressive_sae.interp.config import RecordsConfig
from progressive_sae.interp.records import LatentRecords
from tests.helpers import one_line_error
from tests.interp.helpers import token_cache, token_sae

W = 8


def small_cfg(**kw):
    return RecordsConfig(window=W, top_windows=4, reservoir=5, nonactivating_pool=10,
                         batch_rows=37, checkpoint_every=50, histogram_bins=12, seed=3, **kw)


def brute_force(sae, acts, ids, cfg, g, mode):
    """Everything the records hold, from the dense code of all rows at once."""
    code = sae.encode(torch.from_numpy(acts), g, mode)
    dense = torch.zeros(len(acts), sae.num_latents).scatter_add_(
        1, code.indices, code.values.float().detach())[:, :g].numpy()
    seq, pos = np.arange(len(acts)) // 20, np.arange(len(acts)) % 20
    keys = list(zip(seq, pos // W))
    order = list(dict.fromkeys(keys))  # windows in stream order
    wid = np.array([order.index(key) for key in keys])
    return dense, wid, ids, pos % W


@pytest.mark.parametrize("g,mode", [(None, "relative"), (16, "relative"), (16, "prefix")])
def test_records_equal_a_brute_force_computation(tmp_path, g, mode):
    acts, ids, embed = token_cache(tmp_path / "c")
    sae = token_sae(embed=embed)
    cfg = small_cfg(granularity=g, mode=mode)
    rec = collect_records(sae, CachedActivations(tmp_path / "c", shuffle_buffer=0), cfg)
    n = g or sae.num_latents
    dense, wid, tokens, slot = brute_force(sae, acts, ids, cfg, n, mode)
    assert rec.num_latents == n and rec.tokens_seen == len(acts)
    assert rec.windows_seen == wid.max() + 1 and rec.granularity == g and rec.mode == mode
    np.testing.assert_array_equal(rec.counts, (dense > 0).sum(0))
    np.testing.assert_allclose(rec.max_activation, dense.max(0), rtol=1e-5)
    edges = rec.hist_edges
    for j in range(n):
        v = np.clip(dense[dense[:, j] > 0, j], edges[0], np.nextafter(edges[-1], 0))
        np.testing.assert_array_equal(rec.histogram[j], np.histogram(v, edges)[0])
        win_max = np.zeros(wid.max() + 1)
        np.maximum.at(win_max, wid, dense[:, j])
        active = np.flatnonzero(win_max > 0)
        top = sorted(active, key=lambda w: (-win_max[w], w))[: cfg.top_windows]
        res = sorted(active, key=lambda w: priority(cfg.seed, j, np.array([w]))[0])
        for which, expected in (("top", top), ("res", res[: cfg.reservoir])):
            got = rec.windows(j, which)
            assert [w.wid for w in got] == list(expected)
            for w in got:
                rows = np.flatnonzero(wid == w.wid)
                np.testing.assert_array_equal(w.tokens, tokens[rows])
                np.testing.assert_allclose(w.acts, dense[rows, j], rtol=1e-5)
                assert (w.sequence, w.start) == (rows[0] // 20, rows[0] % 20 // W * W)
    pool = sorted(range(wid.max() + 1), key=lambda w: priority(cfg.seed, -1, np.array([w]))[0])
    pool = pool[: cfg.nonactivating_pool]
    np.testing.assert_array_equal(rec.tensors["pool_wid"].numpy(), pool)
    for j in range(n):
        quiet = [w for w in pool if not (dense[wid == w, j] > 0).any()]
        assert [w.wid for w in rec.nonactivating(j)] == quiet
    assert 0 < rec.live().size <= n


def test_windows_never_cross_a_sequence_and_hold_window_tokens(tmp_path):
    token_cache(tmp_path / "c", sequences=6)
    rec = collect_records(token_sae(), tmp_path / "c", small_cfg())
    # 20-token sequences in 8-token windows: 8, 8, 4 tokens, 3 windows per sequence.
    assert rec.windows_seen == 18
    lengths = {len(w.tokens) for j in rec.live() for w in rec.windows(j, "res")}
    assert lengths <= {8, 4}


class Interrupting:
    """A cache that fails after `reads` reads of activations (an interrupted run)."""

    def __init__(self, cache, reads):
        self.cache, self.reads = cache, reads

    def __getattr__(self, name):
        return getattr(self.cache, name)

    def __len__(self):
        return len(self.cache)

    def rows(self, start, stop):
        self.reads -= 1
        if self.reads < 0:
            raise KeyboardInterrupt
        return self.cache.rows(start, stop)


def test_an_interrupted_collection_resumes_to_the_same_records(tmp_path):
    token_cache(tmp_path / "c")
    sae, cfg = token_sae(), small_cfg()
    cache = CachedActivations(tmp_path / "c", shuffle_buffer=0)
    whole = collect_records(sae, cache, cfg, out=tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        collect_records(sae, Interrupting(cache, 7), cfg, out=tmp_path / "cut")
    partial = tmp_path / ".cut.partial"
    assert (partial / "state.json").is_file() and not (tmp_path / "cut").exists()
    counting = Interrupting(cache, 10**6)
    resumed = collect_records(sae, counting, cfg, out=tmp_path / "cut")
    assert 10**6 - counting.reads < 600 // 37  # it did not start over
    assert not partial.exists()
    loaded = LatentRecords.load(tmp_path / "cut")
    for name, tensor in whole.tensors.items():
        assert torch.equal(tensor, resumed.tensors[name]), name
        assert torch.equal(tensor, loaded.tensors[name]), name
    assert loaded.info() == LatentRecords.load(tmp_path / "whole").info()
    # A finished folder is reused for the same SAE and settings, redone for another SAE.
    assert collect_records(sae, Interrupting(cache, 0), cfg, out=tmp_path / "cut").info() == (
        loaded.info())
    other = collect_records(token_sae(seed=9), cache, cfg, out=tmp_path / "cut")
    assert other.meta["fingerprint"] != loaded.meta["fingerprint"]
    assert LatentRecords.load(tmp_path / "cut").meta["fingerprint"] == other.meta["fingerprint"]


def test_bad_sources_are_one_line_errors(tmp_path):
    token_cache(tmp_path / "ids")
    token_cache(tmp_path / "none", tokens=False)
    one_line_error(lambda: collect_records(token_sae(), tmp_path / "none"), "no token ids")
    one_line_error(lambda: collect_records(token_sae(d=5), tmp_path / "ids"), "d_in=5", "d=6")
    shuffled = CachedActivations(tmp_path / "ids")
    one_line_error(lambda: collect_records(token_sae(), shuffled), "shuffle_buffer=0")
    one_line_error(lambda: RecordsConfig(window=0), "records.window=0")
    one_line_error(lambda: LatentRecords.load(tmp_path), "no latent records")
