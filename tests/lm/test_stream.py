"""Training from a live LM: the same SAE as from a cache of the same rows in the same order,
several hooks from one pass, and errors that are one line."""

import pytest
import torch

from progressive_sae.data.cache import CachedActivations
from progressive_sae.data.feed import SourceRows, StreamFeed
from progressive_sae.lm.extract import extract
from progressive_sae.lm.hooks import activations, activations_at
from progressive_sae.lm.stream import StreamConfig, load_stream_lm, open_stream
from progressive_sae.train import TrainConfig, Trainer
from progressive_sae.train.multi import MultiTrainer, SAEJob
from tests.helpers import one_line_error

BATCH, STEPS, WINDOWS = 256, 6, 4
TEXT = {"source": "cpython-docs", "ctx": 64}


def settings(**extra) -> TrainConfig:
    return TrainConfig(**{"num_latents": 128, "k": 8, "batch_size": BATCH,
                          "total_tokens": BATCH * STEPS, "init_rows": 300,
                          "lr_warmup_steps": 2, "dead_tokens": 512, **extra})


def stream_config(**extra) -> StreamConfig:
    return StreamConfig.from_dict({"text": TEXT, "hook": "layers.2", "buffer_tokens": 1024,
                                   "windows_per_pass": WINDOWS, "dtype": "float16", **extra})


@pytest.fixture(scope="module")
def lm():
    return load_stream_lm(stream_config())


def one_pass(jobs, feed, out):
    return MultiTrainer(jobs, feed, out, progress=False)


def state(trainer):
    return {k: v.clone() for k, v in trainer.sae.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_several_hooks_in_one_pass(lm):
    ids = torch.randint(0, lm.vocab_size, (2, 16))
    both = activations_at(lm, ids, ["layers.2", "layers.0"])
    assert torch.equal(both[0], activations(lm, ids, "layers.2"))
    assert torch.equal(both[1], activations(lm, ids, "layers.0"))


def test_stream_in_text_order_equals_the_cache(lm, tmp_path):
    """buffer_tokens 0 (text order) vs a cache read in text order by the plain trainer."""
    cfg = settings()
    extract(lm, stream_config().text_config, "layers.2", tmp_path / "cache",
            BATCH * STEPS + 500, batch_size=WINDOWS, dtype="float16", progress=False)
    cached = Trainer(cfg, CachedActivations(tmp_path / "cache", shuffle_buffer=0),
                     run_dir=tmp_path / "cached", progress=False)
    cached.fit()
    feed = open_stream(stream_config(buffer_tokens=0), BATCH, lm=lm)
    streamed = one_pass([SAEJob("sae", cfg, "layers.2")], feed, tmp_path / "streamed")
    streamed.fit()
    assert_same(state(streamed.trainers["sae"]), state(cached))


def test_mixed_stream_equals_the_cache_mixed_alike(lm, tmp_path):
    cfg = settings()
    extract(lm, stream_config().text_config, "layers.2", tmp_path / "cache",
            BATCH * STEPS + 2000, batch_size=WINDOWS, dtype="float16", progress=False)
    cache = CachedActivations(tmp_path / "cache", shuffle_buffer=0)
    from_cache = one_pass([SAEJob("sae", cfg, "layers.2")],
                          StreamFeed(SourceRows(cache, 333), ["layers.2"], cache.d_in, 1024,
                                     BATCH, seed=0), tmp_path / "a")
    from_cache.fit()
    live = one_pass([SAEJob("sae", cfg, "layers.2")],
                    open_stream(stream_config(), BATCH, lm=lm), tmp_path / "b")
    live.fit()
    assert_same(state(live.trainers["sae"]), state(from_cache.trainers["sae"]))


def test_one_pass_over_two_hooks_equals_separate_passes(lm, tmp_path):
    jobs = [SAEJob("l2-topk", settings(), "layers.2"),
            SAEJob("l2-matryoshka", settings(granularities=[32, 64]), "layers.2"),
            SAEJob("l1-topk", settings(k=4), "layers.1")]
    both = one_pass(jobs, open_stream(stream_config(hook=None, hooks=["layers.2", "layers.1"]),
                                      BATCH, lm=lm), tmp_path / "one")
    results = both.fit()
    assert set(results) == {"l2-topk", "l2-matryoshka", "l1-topk"}
    assert (tmp_path / "one" / "l1-topk" / "sae").is_dir()
    for job in jobs:
        alone = one_pass([job], open_stream(stream_config(hook=job.hook), BATCH, lm=lm),
                         tmp_path / job.name)
        alone.fit()
        assert_same(state(both.trainers[job.name]), state(alone.trainers[job.name]))


def test_bad_hook_and_small_buffer_are_one_line(lm):
    one_line_error(lambda: open_stream(stream_config(hook="layers.9"), BATCH, lm=lm),
                   "layers.9", "4 blocks")
    one_line_error(lambda: open_stream(stream_config(buffer_tokens=300), BATCH, lm=lm),
                   "buffer_tokens=300", "512")
    one_line_error(lambda: StreamConfig.from_dict({"text": TEXT}), "hook")
    one_line_error(lambda: stream_config(dtype="int8"), "int8")


def test_text_that_runs_dry_says_how_many_tokens(lm, tmp_path):
    text = tmp_path / "small.txt"
    text.write_text("\n\n".join(f"def f{i}(x):\n    return x + {i}" for i in range(40)))
    cfg = settings(total_tokens=BATCH * 40, checkpoint_every=1)
    feed = open_stream(stream_config(text={"source": str(text), "ctx": 64}, buffer_tokens=0),
                       BATCH, lm=lm)
    run = one_pass([SAEJob("sae", cfg, "layers.2")], feed, tmp_path / "run")
    message = one_line_error(run.fit, "ran dry after", "total_tokens=10,240")
    read = feed.rows_read
    assert f"{read:,} tokens" in message
    assert (tmp_path / "run" / "sae" / "checkpoints").is_dir()  # finished steps are kept


def test_an_lm_that_does_not_fit_is_one_line(monkeypatch):
    import progressive_sae.lm.model as model

    def too_big(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(model, "load_lm", too_big)
    one_line_error(lambda: load_stream_lm(stream_config(lm={"model": "big", "device": "cuda"})),
                   "'big'", "does not fit", "cuda")


def test_the_shipped_stream_config_plans_four_saes_at_two_hooks():
    from pathlib import Path

    from progressive_sae.config_files import load_run_config
    from progressive_sae.train.plan import plan_jobs

    config = load_run_config(Path(__file__).resolve().parents[2] / "configs" /
                             "offline-stream.yaml")
    stream = StreamConfig.from_dict(config["data"])
    jobs = plan_jobs(config["train"], config.get("saes"), config.get("grid"),
                     stream.hook_names)
    assert [j.name for j in jobs] == [
        "layers.1/topk-N2048-k32", "layers.2/topk-N2048-k32",
        "layers.1/topk-N4096-k32", "layers.2/topk-N4096-k32"]
    assert stream.buffer_tokens >= 2 * config["train"]["batch_size"]
