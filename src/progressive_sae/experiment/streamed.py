"""`psae run` with `extract.stream: true`: the grid's unfinished SAEs trained together in one
pass over a live LM (SPEC §5.1), with no training cache.

The SAEs keep their run folders `runs/<name>/` (as when trained from a cache); the feed's
position lives in `runs/stream/`. A killed pass resumes at `runs/stream/LATEST` when every
unfinished SAE has a checkpoint there, and otherwise starts again for all of them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from progressive_sae.data.source import IterableSource
from progressive_sae.errors import PSAEError
from progressive_sae.experiment.config import ExperimentConfig, stream_settings
from progressive_sae.experiment.runs import PlannedRun, run_train_config
from progressive_sae.lm.stream import LMRows, StreamConfig, open_stream
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.io import load_sae
from progressive_sae.train.checkpoint import checkpoint_at
from progressive_sae.train.multi import LATEST, STREAM_DIR, MultiTrainer, SAEJob
from progressive_sae.train.trainer import FINAL_SAE


def stream_config(cfg: ExperimentConfig) -> StreamConfig:
    """The live stream of the training text: `lm`, `text` (its train part), `extract`'s hook,
    buffer_tokens, windows_per_pass, dtype and exclude_bos, seeded with train.seed."""
    from progressive_sae.lm.extract import DEFAULT_DTYPE

    given = {k: cfg.extract[k] for k in ("exclude_bos",) if k in cfg.extract}
    # the cache's default dtype, so that a streamed grid reads rows rounded as a cached one
    return StreamConfig(text=dict(cfg.text or {}), lm=dict(cfg.lm), hook=cfg.extract["hook"],
                        **stream_settings(cfg.extract), **given,
                        dtype=cfg.extract.get("dtype", DEFAULT_DTYPE), seed=cfg.train.seed)


class _TextOrder:
    """The stream's first `limit` rows in text order; each iteration runs the LM anew."""

    def __init__(self, rows: LMRows, limit: int) -> None:
        self.rows, self.limit = rows, limit

    def __iter__(self) -> Iterator[torch.Tensor]:
        left = self.limit
        for chunk in self.rows.chunks(0):
            yield chunk[:left]
            left -= chunk.shape[0]
            if left <= 0:  # stop before the LM computes a pass nobody reads
                return


def text_order_rows(lm: Any, stream: StreamConfig) -> IterableSource:
    """What distillation reads of the training rows (`DistillConfig.sample_rows`), from the
    live LM in text order: a re-iterable source, no cache."""
    from progressive_sae.distill import DistillConfig
    from progressive_sae.lm.hooks import resolve_hook

    hooks = [resolve_hook(lm, hook).name for hook in stream.hook_names]
    rows = LMRows(lm, stream, hooks)
    return IterableSource(_TextOrder(rows, DistillConfig().sample_rows), d_in=lm.d_model)


def train_streamed(runs: list[PlannedRun], cfg: ExperimentConfig, lm: Any,
                   stream: StreamConfig, progress: bool = True
                   ) -> dict[str, tuple[SparseAutoencoder, bool]]:
    """{run name: (its finished SAE, whether it is new)}: the runs without one trained now in
    one pass (or resumed), the others reused."""
    out = cfg.out / "runs"
    todo = [run for run in runs if not (out / run.name / FINAL_SAE).is_dir()]
    if todo:
        resume = _resumable(out, todo)
        if not resume:  # killed before a step every unfinished SAE saved: start them again
            for run in todo:
                shutil.rmtree(out / run.name, ignore_errors=True)
            shutil.rmtree(out / STREAM_DIR, ignore_errors=True)
        feed = open_stream(stream, cfg.train.batch_size, lm=lm)
        jobs = [SAEJob(run.name, run_train_config(run, cfg), feed.hooks[0]) for run in todo]
        print(f"[stream] {'resuming' if resume else 'training'} {len(jobs)} SAEs in one pass "
              f"in {out}")
        trainer = MultiTrainer(jobs, feed, out, resume=resume, progress=progress,
                               shared_out=True)
        start = trainer.step
        results = trainer.fit()
        for name, result in results.items():
            if result is not None:
                print(f"[{name}] train FVU {result.fvu:.4f}")
        tokens = (trainer.step - start) * cfg.train.batch_size  # this process's part alone
        print(f"[stream] {len(jobs)} SAEs, {tokens:,} tokens in {trainer.seconds:.1f} s "
              f"({tokens / max(trainer.seconds, 1e-9):,.0f} tokens/s)")
        del trainer, feed  # the optimisers' memory, before the SAEs are loaded back
    fresh = {run.name for run in todo}
    return {run.name: (load_sae(out / run.name / FINAL_SAE), run.name in fresh)
            for run in runs}


def _resumable(out: Path, todo: list[PlannedRun]) -> bool:
    """Whether stream/LATEST names a step every unfinished run has a checkpoint of."""
    pointer = out / STREAM_DIR / LATEST
    if not pointer.is_file():
        return False
    try:
        step = int(pointer.read_text().strip())
    except ValueError:
        return False
    return all(_has_checkpoint(out / run.name, step) for run in todo)


def _has_checkpoint(folder: Path, step: int) -> bool:
    try:
        return checkpoint_at(folder, step) is not None
    except PSAEError:  # it has checkpoints, but not of that step
        return False
