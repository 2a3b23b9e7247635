"""The activation cache: exact round trip, atomic resumable writing, checksums, shuffle."""

import hashlib
import json

import numpy as np
import pytest
import torch

from progressive_sae import SAEConfig, build_sae, train
from progressive_sae.config_files import data_source
from progressive_sae.data.cache import (
    CachedActivations,
    CacheWriter,
    check_sae_fits,
    read_manifest,
)
from tests.helpers import one_line_error

META = {"model": "toy", "hook": "blocks.1", "ctx": 5, "text": {"source": "x.txt"}}


def fake_rows(n=100, d=6, seed=0, ctx=5):
    """Rows of consecutive windows of `ctx` positions, with made-up tokens."""
    rng = np.random.default_rng(seed)
    acts = rng.standard_normal((n, d)).astype(np.float32)
    sequences = np.arange(n) // ctx
    positions = np.arange(n) % ctx
    tokens = rng.integers(0, 50, n)
    return acts, tokens, sequences, positions


def write_cache(path, data, chunks=(13, 1, 30, 0, 56), **kw):
    acts, tokens, sequences, positions = data
    kw = {"rows_per_shard": 16, "meta": META, **kw}
    writer = CacheWriter(path, **kw)
    start = 0
    for size in chunks:
        stop = start + size
        writer.add(acts[start:stop], tokens[start:stop], sequences[start:stop],
                   positions[start:stop])
        start = stop
    assert start == len(acts)
    return writer.finish()


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_round_trip_is_exact(tmp_path, dtype):
    data = fake_rows()
    acts, tokens, sequences, positions = data
    manifest_file = write_cache(tmp_path / "c", data, dtype=dtype)
    cache = CachedActivations(tmp_path / "c", shuffle_buffer=0, verify="open")
    expected = torch.from_numpy(acts).to(getattr(torch, dtype)).float()
    assert len(cache) == 100 and cache.d_in == 6
    assert torch.equal(cache.rows(0, 100), expected)
    assert torch.equal(cache.rows(14, 53), expected[14:53])  # across shard boundaries
    assert cache.rows(7, 7).shape == (0, 6)
    assert torch.equal(cache.tokens(0, 100), torch.from_numpy(tokens))
    assert torch.equal(cache.positions(10, 40),
                       torch.from_numpy(np.stack([sequences, positions], 1)[10:40]))

    manifest = json.loads(manifest_file.read_text())
    assert manifest["complete"] and manifest["total_rows"] == 100 and manifest["d"] == 6
    assert manifest["dtype"] == dtype and manifest["rows_per_shard"] == 16
    assert manifest["hook"] == "blocks.1" and manifest["text"] == {"source": "x.txt"}
    assert [s["rows"] for s in manifest["shards"]] == [16] * 6 + [4]
    for shard in manifest["shards"]:
        for kind in ("activations", "tokens"):
            digest = hashlib.sha256((tmp_path / "c" / shard[kind]).read_bytes()).hexdigest()
            assert digest == shard["sha256"][kind]
    stored = np.load(tmp_path / "c" / "acts_00000.npy")
    assert stored.dtype == np.dtype({"bfloat16": "uint16"}.get(dtype, dtype))


def test_shuffle_is_a_seeded_random_access_permutation(tmp_path):
    data = fake_rows(n=1000, d=3)
    write_cache(tmp_path / "c", data, chunks=(1000,), rows_per_shard=64)
    plain = CachedActivations(tmp_path / "c", shuffle_buffer=0)
    full = plain.rows(0, 1000)
    table = plain.token_table(0, 1000)
    for buffer, block in ((256, 1), (300, 8), (4096, 1)):
        cache = CachedActivations(tmp_path / "c", shuffle_buffer=buffer, block=block, seed=3)
        order = cache.physical_rows(0, 1000)
        assert sorted(order.tolist()) == list(range(1000))
        assert not np.array_equal(order, np.arange(1000))
        window = max(block, buffer // block * block)
        assert np.array_equal(order // window, np.arange(1000) // window)  # stays in window
        shuffled = cache.rows(0, 1000)
        assert torch.equal(shuffled, full[torch.from_numpy(order)])
        assert np.array_equal(cache.token_table(0, 1000), table[order])
        for start, stop in ((0, 1), (123, 456), (250, 270), (999, 1000)):  # random access
            again = CachedActivations(tmp_path / "c", shuffle_buffer=buffer, block=block, seed=3)
            assert torch.equal(again.rows(start, stop), shuffled[start:stop])
        if block > 1:
            runs = order[: window // block * block].reshape(-1, block)
            assert np.all(np.diff(runs, axis=1) == 1)
    other = CachedActivations(tmp_path / "c", shuffle_buffer=256, seed=4).physical_rows(0, 1000)
    same = CachedActivations(tmp_path / "c", shuffle_buffer=256, seed=3).physical_rows(0, 1000)
    assert not np.array_equal(other, same)


def test_trainer_reads_a_shuffled_cache(tmp_path):
    data = fake_rows(n=600, d=8)
    write_cache(tmp_path / "c", data, chunks=(600,), rows_per_shard=100)
    cache = CachedActivations(tmp_path / "c", shuffle_buffer=256)
    sae, result = train(cache, num_latents=16, k=2, batch_size=64, total_tokens=64 * 12,
                        lr_warmup_steps=2, progress=False)
    assert sae.d_in == 8 and result.steps == 12


def test_corrupt_shard_is_detected_and_named(tmp_path):
    write_cache(tmp_path / "c", fake_rows(), dtype="float32")
    shard = tmp_path / "c" / "acts_00002.npy"
    raw = bytearray(shard.read_bytes())
    raw[-5] ^= 0x10
    shard.write_bytes(bytes(raw))
    cache = CachedActivations(tmp_path / "c", shuffle_buffer=0)
    cache.rows(0, 32)  # shards 0 and 1 are fine and checked lazily
    one_line_error(lambda: cache.rows(30, 40), "acts_00002.npy", "corrupt")
    one_line_error(lambda: CachedActivations(tmp_path / "c", verify="open"), "acts_00002.npy")
    one_line_error(lambda: CachedActivations(tmp_path / "c").verify(), "acts_00002.npy")
    (tmp_path / "c" / "tokens_00005.npy").unlink()
    fresh = CachedActivations(tmp_path / "c", shuffle_buffer=0)
    one_line_error(lambda: fresh.tokens(80, 90), "tokens_00005.npy", "missing")


def test_interrupted_writer_resumes_to_an_identical_cache(tmp_path):
    data = fake_rows()
    write_cache(tmp_path / "whole", data)
    acts, tokens, sequences, positions = data
    writer = CacheWriter(tmp_path / "cut", rows_per_shard=16, meta=META)
    writer.add(acts[:40], tokens[:40], sequences[:40], positions[:40])  # 2 shards + 8 buffered
    del writer  # killed: the buffered rows are lost
    (tmp_path / "cut" / ".acts_00002.npy.x.tmp").write_bytes(b"half")  # a half-written shard
    (tmp_path / "cut" / "acts_00002.npy").write_bytes(b"renamed, manifest not updated")
    incomplete = CachedActivations(tmp_path / "cut", shuffle_buffer=0, allow_incomplete=True)
    assert len(incomplete) == 32
    one_line_error(lambda: CachedActivations(tmp_path / "cut"), "incomplete")

    resumed = CacheWriter(tmp_path / "cut", rows_per_shard=16, meta=META)
    assert resumed.rows_written == 32 and resumed.last_sequence() == 6
    assert resumed.written_rows_from(5) == 7 and resumed.written_rows_from(7) == 0
    resumed.add(acts[32:], tokens[32:], sequences[32:], positions[32:])
    resumed.finish()
    names = sorted(p.name for p in (tmp_path / "whole").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "cut").iterdir())
    for name in names:
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "cut" / name).read_bytes()


def test_writer_refuses_mismatches(tmp_path):
    data = fake_rows()
    acts, tokens, sequences, positions = data
    writer = CacheWriter(tmp_path / "c", rows_per_shard=16, meta=META)
    writer.add(acts[:20], tokens[:20], sequences[:20], positions[:20])
    one_line_error(lambda: CacheWriter(tmp_path / "c", meta={**META, "hook": "blocks.2"}),
                   "hook=\"blocks.1\"", "hook=\"blocks.2\"")
    one_line_error(lambda: CacheWriter(tmp_path / "c", dtype="float32", meta=META), "dtype")
    one_line_error(lambda: CacheWriter(tmp_path / "c", rows_per_shard=8, meta=META),
                   "rows_per_shard")
    one_line_error(lambda: writer.add(acts[:3, :4], tokens[:3], sequences[:3], positions[:3]),
                   "width 4", "d=6")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    one_line_error(lambda: CacheWriter(tmp_path / "other"), "not an activation cache")
    one_line_error(lambda: CacheWriter(tmp_path / "new", dtype="int8"), "dtype='int8'")
    one_line_error(lambda: CacheWriter(tmp_path / "empty").finish(), "no activation rows")
    one_line_error(lambda: CachedActivations(tmp_path / "missing"), "not an activation cache")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "manifest.json").write_text("{\"format\": \"else\"}")
    one_line_error(lambda: read_manifest(tmp_path / "junk"), "not a progressive-sae")


def test_sae_width_must_match_and_configs_name_caches(tmp_path):
    write_cache(tmp_path / "c", fake_rows(d=6))
    cache = CachedActivations(tmp_path / "c")
    check_sae_fits(build_sae(SAEConfig(d_in=6, num_latents=12, k=2)), cache)
    one_line_error(lambda: check_sae_fits(build_sae(SAEConfig(d_in=8, num_latents=12, k=2)),
                                          cache), "d_in=8", "d=6", "blocks.1")
    source = data_source({"cache": "c", "shuffle_buffer": 32, "seed": 1}, base=tmp_path)
    assert isinstance(source, CachedActivations) and len(source) == 100
    assert torch.equal(source.rows(0, 100),
                       CachedActivations(tmp_path / "c", 32, seed=1).rows(0, 100))
    one_line_error(lambda: data_source({"cache": str(tmp_path / "c"), "shufle": 3}),
                   "unknown cache data key 'shufle'")
    one_line_error(lambda: data_source({"cache": str(tmp_path / "nope")}),
                   "not an activation cache")
