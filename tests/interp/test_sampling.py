"""Sampling: disjoint train/test windows from every rank-quantile, non-activating windows,
skipped latents reported, local generators only."""

import random

import numpy as np
import pytest
import torch

from progressive_sae.interp.collect import collect_records
from progressive_sae.interp.config import RecordsConfig, SamplingConfig
from progressive_sae.interp.sampling import Bucket, LatentExamples, buckets, sample
from tests.helpers import one_line_error
from tests.interp.helpers import token_cache, token_sae


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("c")
    _, _, embed = token_cache(path / "c", sequences=60)
    cfg = RecordsConfig(window=8, reservoir=12, nonactivating_pool=40, batch_rows=256)
    return collect_records(token_sae(embed=embed), path / "c", cfg)


CFG = SamplingConfig(quantiles=3, latents_per_quantile=2, train_examples=6, test_examples=4,
                     example_quantiles=3)


def test_train_and_test_are_disjoint_and_span_the_rank_quantiles(records):
    examples, skipped = sample(records, Bucket(0, 24), CFG, seed=5)
    assert examples and len(examples) + len(skipped) <= 3 * 2
    for item in examples:
        train, test = {w.wid for w in item.train}, {w.wid for w in item.test}
        assert len(train) == 6 and len(test) == 4 and not train & test
        assert all(w.acts.max() > 0 for w in item.train + item.test)
        activating = {w.wid for w in records.windows(item.latent, "res")}
        assert (train | test) <= activating
        quiet = item.nonactivating
        assert len(quiet) == 4 and not {w.wid for w in quiet} & activating
        assert records.tensors["pool_active"][:, item.latent].sum() < 40
        # Test windows come from each third of the activation ranking.
        ranked = sorted(records.windows(item.latent, "res"), key=lambda w: (w.max_act, w.wid))
        rank = {w.wid: i for i, w in enumerate(ranked)}
        thirds = {rank[w] * 3 // len(ranked) for w in test}
        assert thirds == {0, 1, 2}


def test_sampling_is_seeded_and_never_touches_the_global_rng(records):
    state = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    a, _ = sample(records, Bucket(0, 24), CFG, seed=5)
    b, _ = sample(records, Bucket(0, 24), CFG, seed=5)
    c, _ = sample(records, Bucket(0, 24), CFG, seed=6)
    assert random.getstate() == state[0]
    assert np.array_equal(np.random.get_state()[1], state[1])
    assert torch.equal(torch.get_rng_state(), state[2])
    key = [(i.latent, [w.wid for w in i.train], [w.wid for w in i.test]) for i in a]
    assert key == [(i.latent, [w.wid for w in i.train], [w.wid for w in i.test]) for i in b]
    assert key != [(i.latent, [w.wid for w in i.train], [w.wid for w in i.test]) for i in c]


def test_latents_with_too_few_windows_are_reported_not_dropped(records, tmp_path):
    strict = SamplingConfig(quantiles=1, latents_per_quantile=24, train_examples=8,
                            test_examples=4)
    examples, skipped = sample(records, Bucket(0, 24), strict)
    assert len(examples) + len(skipped) == records.live().size
    token_cache(tmp_path / "short", sequences=3)  # 9 windows: nobody fires in 12
    short = collect_records(token_sae(), tmp_path / "short", RecordsConfig(window=8, reservoir=12))
    none, skipped = sample(short, Bucket(0, 24), strict)
    assert not none and len(skipped) == short.live().size > 0
    strict.scorable_only = True  # then only latents that can be scored are drawn
    examples, skipped = sample(records, Bucket(0, 24), strict)
    assert examples and not skipped
    assert sample(short, Bucket(0, 24), strict) == ([], [])
    for s in skipped:
        assert "need 12" in s.reason and s.to_dict()["latent"] == s.latent
    dead = set(range(24)) - set(records.live().tolist())
    assert not dead & {i.latent for i in examples}
    assert all(isinstance(i, LatentExamples) for i in examples)
    one_line_error(lambda: sample(records, Bucket(0, 24), SamplingConfig(train_examples=20)),
                   "records.reservoir=12")


def test_buckets_follow_the_granularities():
    assert buckets([8, 16, 24, 99], 24) == [Bucket(0, 8), Bucket(8, 16), Bucket(16, 24)]
    assert buckets(None, 24) == [Bucket(0, 24)]
    assert Bucket(0, 8).label == "[0, 8)"
