"""One pass, many SAEs: every SAE of a list — at one hook point or several — trained on the
same batches in the same order, each batch read (or computed by the LM) once per step.

Each SAE is an ordinary `Trainer` with its own run folder (`<out>/<name>/`: checkpoints,
metrics.jsonl, sae/), fed by `train_step`; the feed's exact state is saved beside them under
`<out>/stream/step_N/` after all of the step's SAE checkpoints, so `stream/LATEST` names a
step every unfinished SAE has a checkpoint of. Resuming continues every SAE there and ends
bit for bit where an uninterrupted run ends (SPEC §5.1).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tqdm import tqdm

from progressive_sae.atomic import write_bytes_atomic, write_json_atomic, write_safetensors_atomic
from progressive_sae.data.feed import BatchFeed
from progressive_sae.data.mixing import RowsExhausted
from progressive_sae.errors import PSAEError
from progressive_sae.json_files import read_json_object
from progressive_sae.runtime import release_cpu_memory
from progressive_sae.train.checkpoint import prune_steps
from progressive_sae.train.config import TrainConfig
from progressive_sae.train.distributed import Distributed
from progressive_sae.train.trainer import FINAL_SAE, Trainer, TrainResult

STREAM_DIR = "stream"
LATEST = "LATEST"


@dataclass
class SAEJob:
    """One SAE of a one-pass run."""

    name: str
    """Its run folder under the output folder (may hold '/', e.g. 'layers.2/topk-N4096-k32')."""
    cfg: TrainConfig
    """Its training settings (batch_size and checkpoint_every shared by all jobs)."""
    hook: str
    """The hook point whose rows it is trained on."""


class _HeadRows:
    """A trainer's view of the feed's first rows (b_dec starts at their centre)."""

    def __init__(self, feed: BatchFeed, hook: str) -> None:
        self.feed, self.hook, self.d_in = feed, hook, feed.d_in

    def init_rows(self, rows: int) -> torch.Tensor:
        return self.feed.head(rows)[self.hook]


class MultiTrainer:
    """Trains every job from one feed, one step at a time."""

    def __init__(self, jobs: list[SAEJob], feed: BatchFeed, out: str | Path,
                 resume: bool = False, progress: bool = True,
                 dist: Distributed | None = None, shared_out: bool = False) -> None:
        """`shared_out`: `out` may hold other, finished runs (`psae run`'s runs/); a fresh
        pass then needs only the jobs' own folders and stream/ to be empty."""
        if not jobs:
            raise PSAEError("no SAEs to train: expected at least one")
        _check_jobs(jobs, feed)
        self.jobs, self.feed, self.out, self.progress = jobs, feed, Path(out), progress
        self.dist = dist or Distributed.from_environment(jobs[0].cfg.device)
        self.every = jobs[0].cfg.checkpoint_every
        self.step = 0
        if resume:
            self.step = self._resume_step()
        elif any(p.is_dir() and any(p.iterdir()) for p in
                 ([self.out / STREAM_DIR, *(self.out / j.name for j in jobs)] if shared_out
                  else [self.out])):
            raise PSAEError(f"{self.out} already holds files; pass --resume to continue that "
                            "run or choose an empty directory")
        self.trainers: dict[str, Trainer] = {}
        self.finished: dict[str, TrainResult | None] = {}
        for job in jobs:
            folder = self.out / job.name
            if resume and (folder / FINAL_SAE).is_dir():
                self.finished[job.name] = None  # ended before the kill: nothing to redo
                continue
            try:  # a fresh trainer reads the feed's first rows for b_dec
                self.trainers[job.name] = Trainer(
                    job.cfg, _HeadRows(feed, job.hook), run_dir=folder, resume=resume,
                    progress=False, dist=self.dist, resume_step=self.step if resume else None)
            except RowsExhausted as err:
                raise self._ran_dry(err, [job.cfg]) from None
        if resume:
            self._load_feed_state()

    # -- resume ----------------------------------------------------------------------------
    def _resume_step(self) -> int:
        pointer = self.out / STREAM_DIR / LATEST
        if not pointer.is_file():
            raise PSAEError(f"{self.out} has no saved stream position to resume from (no "
                            f"{STREAM_DIR}/{LATEST}): start the run again without --resume")
        return int(pointer.read_text().strip())

    def _load_feed_state(self) -> None:
        folder = self._state_folder(self.step)
        name = f"rank_{self.dist.rank}"
        info = read_json_object(folder / f"{name}.json", f"{folder} lacks {name}.json")
        tensors = load_file(folder / f"{name}.safetensors")
        self.feed.load_state(tensors, info, self.step)

    def _state_folder(self, step: int) -> Path:
        return self.out / STREAM_DIR / f"step_{step:08d}"

    def _save_feed_state(self) -> None:
        folder = self._state_folder(self.step)
        folder.mkdir(parents=True, exist_ok=True)
        tensors, info = self.feed.state()
        name = f"rank_{self.dist.rank}"
        write_safetensors_atomic(folder / f"{name}.safetensors", tensors)
        write_json_atomic(folder / f"{name}.json", {"step": self.step, **info})
        self.dist.barrier()
        if self.dist.is_main:
            write_bytes_atomic(self.out / STREAM_DIR / LATEST, str(self.step).encode())
            prune_steps(self.out / STREAM_DIR, 2)
        self.dist.barrier()

    # -- the loop --------------------------------------------------------------------------
    def fit(self) -> dict[str, TrainResult | None]:
        """Train until every SAE is done; {name: result} (None: finished before a resume)."""
        active = dict(self.trainers)
        total = max((t.cfg.total_steps for t in active.values()), default=self.step)
        show = self.progress and self.dist.is_main
        bar = tqdm(total=total, initial=self.step, disable=not show, dynamic_ncols=True,
                   desc=f"train {len(self.jobs)} SAEs", unit="step",
                   mininterval=0.2 if sys.stderr.isatty() else 30.0)
        started = time.perf_counter()
        for trainer in active.values():
            trainer.begin()
        hook_of = {job.name: job.hook for job in self.jobs}
        try:
            while active:
                batch = self._next_batch(active)
                for name, trainer in active.items():
                    trainer.train_step(batch[hook_of[name]])
                del batch
                self.step += 1
                bar.update(1)
                ending = [n for n, t in active.items() if t.done]
                for name in ending:
                    self.finished[name] = active.pop(name).finish()
                if ending or (self.every and self.step % self.every == 0):
                    for trainer in active.values():
                        trainer.save_checkpoint()
                    self._save_feed_state()
        finally:
            bar.close()
            if self.jobs[0].cfg.device == "cpu":
                release_cpu_memory()
        self.seconds = time.perf_counter() - started
        return self.finished

    def _next_batch(self, active: dict[str, Trainer]) -> dict[str, torch.Tensor]:
        try:
            return self.feed.next()
        except RowsExhausted as err:
            raise self._ran_dry(err, [t.cfg for t in active.values()]) from None

    def _ran_dry(self, err: RowsExhausted, cfgs: list[TrainConfig]) -> PSAEError:
        need = max(cfg.total_tokens for cfg in cfgs)
        per = f" ({need // self.dist.world:,} per process)" if self.dist.world > 1 else ""
        kept = " (checkpoints up to here are kept)" if self.step else ""
        return PSAEError(
            f"{err.feed} ran dry after {err.rows_read:,} tokens, at step {self.step}: "
            f"total_tokens={need:,}{per} needs more; give more text or lower "
            f"total_tokens{kept}")


def _check_jobs(jobs: list[SAEJob], feed: BatchFeed) -> None:
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise PSAEError(f"SAE name {twice[0]!r} is used twice: give each SAE its own name")
    first = jobs[0].cfg
    for job in jobs:
        if job.hook not in feed.hooks:
            raise PSAEError(f"SAE {job.name!r} reads hook {job.hook!r}: the data gives "
                            f"{feed.hooks}")
        for key in ("batch_size", "checkpoint_every", "device"):
            if getattr(job.cfg, key) != getattr(first, key):
                raise PSAEError(f"SAE {job.name!r} has {key}={getattr(job.cfg, key)!r}, "
                                f"{jobs[0].name!r} {getattr(first, key)!r}: SAEs trained in "
                                "one pass share it")
        if job.cfg.keep_checkpoints < 2:
            raise PSAEError(f"SAE {job.name!r} has keep_checkpoints={job.cfg.keep_checkpoints}:"
                            " one-pass training keeps at least 2 (a kill mid-checkpoint must "
                            "leave a step every SAE has)")


def result_summary(results: dict[str, TrainResult | None]) -> dict[str, Any]:
    """JSON-able {name: result dict or 'finished before resume'}."""
    return {name: (r.to_dict() if r is not None else "finished before this resume")
            for name, r in results.items()}
