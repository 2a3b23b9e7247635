"""The mixing buffer: every row out once, shuffled, deterministic, and resumable bit for bit."""

import pytest
import torch

from progressive_sae.data.feed import SourceRows, StreamFeed
from progressive_sae.data.mixing import MixingBuffer, RowsExhausted
from progressive_sae.data.source import TensorSource
from tests.helpers import one_line_error


def numbered(rows: int, width: int = 3) -> SourceRows:
    """Row i holds i in every column, so a batch tells which rows it drew."""
    data = torch.arange(rows, dtype=torch.float32)[:, None].expand(rows, width).contiguous()
    return SourceRows(TensorSource(data), chunk_rows=7)


def drain(buffer: MixingBuffer) -> list[torch.Tensor]:
    out = []
    while True:
        try:
            out.append(buffer.next_batch())
        except RowsExhausted:
            return out


def test_every_row_leaves_once_and_the_order_is_mixed():
    batches = drain(MixingBuffer(numbered(1000), capacity=64, batch=8, seed=1))
    ids = torch.cat(batches)[:, 0].long()
    assert len(ids) == 1000 // 8 * 8
    assert len(set(ids.tolist())) == len(ids)  # no row twice
    assert set(ids.tolist()) <= set(range(1000))
    assert not torch.equal(ids, ids.sort().values)  # shuffled
    # a row never leaves before it was read: the first batch comes from the first 64 rows
    assert int(batches[0][:, 0].max()) < 64
    # mixing is local: rows leave within a few buffer-lengths of their place in the text
    lag = (ids - torch.arange(len(ids))).abs().float().mean()
    assert lag < 64


def test_same_seed_same_batches_other_seed_others():
    a = torch.cat(drain(MixingBuffer(numbered(300), capacity=32, batch=4, seed=5)))
    b = torch.cat(drain(MixingBuffer(numbered(300), capacity=32, batch=4, seed=5)))
    c = torch.cat(drain(MixingBuffer(numbered(300), capacity=32, batch=4, seed=6)))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("stop", [1, 3, 4, 9, 30])
def test_state_resumes_the_same_batches(stop):
    whole = drain(MixingBuffer(numbered(400), capacity=40, batch=5, seed=2))
    first = MixingBuffer(numbered(400), capacity=40, batch=5, seed=2)
    for _ in range(stop):
        first.next_batch()
    tensors, info = first.state()
    tensors = {k: v.clone() for k, v in tensors.items()}
    again = MixingBuffer(numbered(400), capacity=40, batch=5, seed=2)
    again.load_state(tensors, info)
    rest = drain(again)
    assert len(rest) == len(whole) - stop
    for got, want in zip(rest, whole[stop:]):
        assert torch.equal(got, want)


def test_no_mixing_keeps_the_order():
    batches = drain(MixingBuffer(numbered(50), capacity=0, batch=8, seed=0))
    assert torch.equal(torch.cat(batches)[:, 0], torch.arange(48, dtype=torch.float32))


def test_exhaustion_says_how_many_rows_were_read():
    buffer = MixingBuffer(numbered(20), capacity=16, batch=8, seed=0)
    drain(buffer)
    with pytest.raises(RowsExhausted) as info:
        buffer.next_batch()
    assert info.value.rows_read == 20
    assert "20 rows" in str(info.value)


def test_a_buffer_smaller_than_two_batches_is_refused():
    one_line_error(lambda: MixingBuffer(numbered(20), capacity=12, batch=8),
                   "12", "8", "two batches")


def test_stream_feed_splits_hooks_and_replays_its_head():
    data = torch.randn(200, 6)
    feed = StreamFeed(SourceRows(TensorSource(data), 16), ["a", "b"], 3, 40, 8, seed=0)
    head = feed.head(12)
    assert head["a"].shape == (12, 3) and head["b"].shape == (12, 3)
    first, second = feed.next(), feed.next()
    assert torch.equal(torch.cat([first["a"], second["a"]])[:12], head["a"])
    assert torch.equal(first["b"], torch.cat([first["a"], first["b"]], 1)[:, 3:])
    # the two hooks' halves of a batch come from the same rows
    rows = {tuple(r.tolist()) for r in data}
    assert all(tuple(r.tolist()) in rows for r in torch.cat([first["a"], first["b"]], 1))
