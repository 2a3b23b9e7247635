"""The training loop. It sees activations only as tensors from a source in `data/`."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from tqdm import tqdm

from progressive_sae.data.batching import first_rows, iterate_batches
from progressive_sae.data.source import ActivationSource, IterableSource, as_source
from progressive_sae.errors import PSAEError
from progressive_sae.json_files import to_json
from progressive_sae.kernels import fast_matmul_dtype
from progressive_sae.objectives import LossParts, sae_loss, sample_granularities
from progressive_sae.runtime import configure_cpu_allocator, release_cpu_memory
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.config import SAEConfig
from progressive_sae.sae.io import build_sae, save_sae
from progressive_sae.train.adamw import FusedAdamW
from progressive_sae.train.checkpoint import (
    TrainingState,
    checkpoint_at,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from progressive_sae.train.config import MATMUL_DTYPES, TrainConfig
from progressive_sae.train.dead_latents import DeadLatentTracker
from progressive_sae.train.distributed import Distributed
from progressive_sae.train.init import geometric_median
from progressive_sae.train.metrics_log import MetricsLog
from progressive_sae.train.schedule import learning_rate

FINAL_SAE = "sae"
METRICS_FILE = "metrics.jsonl"
RESUMABLE_CHANGES = ("lr", "lr_scale")
"""Settings a resumed run may change: lowering the rate is how a diverged run continues."""


class TrainingDiverged(PSAEError):
    """The loss or a gradient turned NaN/Inf; nothing of the bad step was written."""


@dataclass
class TrainResult:
    """What a finished run reports; the SAE itself is `Trainer.sae`."""

    steps: int
    tokens: int
    fvu: float
    """FVU of the last logged window of training batches."""
    l0: float
    dead_fraction: float
    seconds: float
    tokens_per_second: float
    sae_path: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class FedRows(Protocol):
    """What a trainer needs to know of batches it does not read itself."""

    d_in: int

    def init_rows(self, rows: int) -> torch.Tensor:
        """The first `rows` rows it will be fed (b_dec starts at their centre)."""
        ...


class Trainer:
    """Trains one SAE on one activation source, with exact resume from checkpoints."""

    def __init__(
        self, cfg: TrainConfig, data: object, run_dir: str | Path | None = None,
        resume: bool = False, progress: bool = True, dist: Distributed | None = None,
        resume_step: int | None = None,
    ) -> None:
        """`data`: a tensor, array, .npy path, source or iterable of tensors — or, when
        batches come from elsewhere (`train/multi.py`), a `FedRows` giving the width and
        the rows that initialise b_dec. `resume_step`: resume at that checkpoint, not the
        latest."""
        self.cfg = cfg
        self.fed = data if isinstance(data, FedRows) else None
        self.source: ActivationSource | IterableSource | None = (
            None if self.fed is not None else as_source(data))
        self.resume_step = resume_step
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        if torch.device(cfg.device).type == "cuda" and not torch.cuda.is_available():
            raise PSAEError(f"device={cfg.device!r}: CUDA is not available here; use 'cpu'")
        self.dist = dist or Distributed.from_environment(cfg.device)
        self.device = torch.device(cfg.device)
        if self.device.type == "cpu":
            configure_cpu_allocator()
        d_in = self._infer_d_in()
        self.sae: SparseAutoencoder = build_sae(SAEConfig(
            d_in=d_in, num_latents=cfg.num_latents, k=cfg.k, activation=cfg.activation,
            granularities=cfg.granularities,
            metadata={"train_config": cfg.to_dict()},
        )).to(self.device)
        self.sae.reset_parameters(torch.Generator().manual_seed(cfg.seed))
        self.sae.to(self.device)
        self.optimizer = FusedAdamW(
            self.sae.parameters(), lr=cfg.peak_lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
            weight_decay=cfg.weight_decay,
        )
        self.tracker = DeadLatentTracker(cfg.num_latents, cfg.resolved_dead_tokens(), self.device)
        self.rng = torch.Generator().manual_seed(cfg.seed + 1)
        self.step = 0
        chosen = MATMUL_DTYPES[cfg.matmul_dtype] or fast_matmul_dtype(self.device)
        self.matmul_dtype = str(chosen).removeprefix("torch.")
        self.sae.selection_dtype = chosen
        self._prepare_run_dir(resume)
        self.begin()

    # --- set-up ---------------------------------------------------------------------------
    def _infer_d_in(self) -> int:
        if self.fed is not None:
            return self.fed.d_in
        assert self.source is not None
        if isinstance(self.source, IterableSource):
            if self.source.d_in is None:
                first = next(iter(self.source), None)
                if first is None:
                    raise PSAEError("the activation source holds no rows")
                self.source.d_in = first.shape[1]
            return self.source.d_in
        if len(self.source) == 0:
            raise PSAEError("the activation source holds no rows")
        return self.source.d_in

    def _run_info(self) -> dict[str, Any]:
        return {"train_config": self.cfg.to_dict(), "d_in": self.sae.d_in,
                "matmul_dtype": self.matmul_dtype, "world": self.dist.world}

    def _prepare_run_dir(self, resume: bool) -> None:
        self.metrics = MetricsLog(
            self.run_dir / METRICS_FILE if self.run_dir and self.dist.is_main else None,
            self.cfg.wandb_project if self.dist.is_main else None, self.cfg.to_dict(),
        )
        if self.run_dir is None:
            if resume:
                raise PSAEError("resume needs a run directory")
            self._initialise_b_dec()
            return
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise PSAEError(f"{self.run_dir} is a file: expected a run directory")
        checkpoint = (latest_checkpoint(self.run_dir) if self.resume_step is None
                      else checkpoint_at(self.run_dir, self.resume_step))
        if resume:
            if checkpoint is None:
                raise PSAEError(f"{self.run_dir} has no checkpoint to resume from")
            self._restore(checkpoint)
            return
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise PSAEError(
                f"{self.run_dir} already holds files; pass --resume to continue that run "
                "or choose an empty directory"
            )
        self._initialise_b_dec()  # reads and checks the first rows before anything is written
        self.dist.barrier()  # every rank has checked the directory before rank 0 writes into it
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "train_config.json").write_text(
                to_json(self._run_info(), indent=2) + "\n"
            )

    def _restore(self, folder: Path) -> None:
        state = load_checkpoint(folder, self.sae, self.optimizer)
        expected = self._run_info()
        saved_cfg = state.info.get("train_config")
        saved = {**(saved_cfg if isinstance(saved_cfg, dict) else {}),
                 "d_in": state.info.get("d_in"), "world": state.info.get("world")}
        wanted = {**expected["train_config"], "d_in": expected["d_in"], "world": expected["world"]}
        for key in sorted(set(saved) | set(wanted)):
            if key not in RESUMABLE_CHANGES and saved.get(key) != wanted.get(key):
                raise PSAEError(
                    f"checkpoint {folder} was written with {key}={saved.get(key)!r}, not "
                    f"{wanted.get(key)!r}; resume with the run's original settings"
                )
        self.matmul_dtype = state.info.get("matmul_dtype", self.matmul_dtype)
        self.sae.selection_dtype = getattr(torch, self.matmul_dtype)
        self.step = state.step
        self.tracker.tokens_since_fired.copy_(state.tokens_since_fired)
        self.rng.set_state(state.rng_state)
        self.metrics.truncate_after(self.step)

    def _initialise_b_dec(self) -> None:
        if self.cfg.b_dec_init == "zero":
            return
        if self.fed is not None:
            sample = self.fed.init_rows(self.cfg.init_rows).to(self.device)
        else:
            assert self.source is not None
            sample = first_rows(self.source, self.cfg.batch_size,
                                self.cfg.init_rows).to(self.device)
        self._check_batch(sample, 0)
        center = sample.mean(0) if self.cfg.b_dec_init == "mean" else geometric_median(sample)
        with torch.no_grad():
            self.sae.b_dec.copy_(center)
        # Streamed ranks see different first rows: all start from rank 0's centre.
        self.dist.broadcast_(self.sae.b_dec.data)

    # --- the loop -------------------------------------------------------------------------
    def _check_batch(self, x: torch.Tensor, step: int) -> None:
        if x.ndim != 2 or x.shape[1] != self.sae.d_in:
            raise PSAEError(
                f"batch {step} has shape {tuple(x.shape)}: expected [n, d_in={self.sae.d_in}]"
            )
        if not torch.isfinite(x).all():
            raise PSAEError(f"batch {step} holds NaN or Inf activations")

    def _granularities(self) -> torch.Tensor | None:
        if self.cfg.sampled_granularities:
            return sample_granularities(
                self.cfg.num_latents, self.cfg.sampled_granularities, self.rng
            ).to(self.device)
        if self.cfg.granularities is not None:
            return torch.tensor(self.cfg.granularities, device=self.device)
        return None

    def fit(self) -> TrainResult:
        """Train on this trainer's own source until total_tokens."""
        if self.source is None:
            raise PSAEError("this trainer is fed batches by a one-pass trainer: call "
                            "train_step(x) with each batch instead of fit()")
        cfg, total = self.cfg, self.cfg.total_steps
        batches = iterate_batches(
            self.source, cfg.batch_size, self.step, self.dist.rank, self.dist.world
        )
        show = self.progress and self.dist.is_main
        bar = tqdm(total=total, initial=self.step, disable=not show,
                   desc="train", unit="step", dynamic_ncols=True,
                   mininterval=0.2 if sys.stderr.isatty() else 30.0)
        self.begin()
        try:
            while not self.done:
                x = next(batches, None)
                if x is None:
                    raise PSAEError(
                        f"the activation source ran out after {self.step} batches of "
                        f"{cfg.batch_size}; total_tokens={cfg.total_tokens} needs {total}"
                    )
                logged = self.train_step(x)
                bar.update(1)
                if logged is not None:
                    bar.set_postfix(loss=f"{logged['loss']:.4f}", fvu=f"{logged['fvu']:.4f}",
                                    l0=f"{logged['l0']:.1f}",
                                    dead=f"{logged['dead_fraction']:.3f}")
                if self.run_dir and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
        finally:
            bar.close()
            if self.device.type == "cpu":
                release_cpu_memory()  # the heap kept the steps' temporaries; hand them back
        return self.finish()

    # --- one step at a time (also how a one-pass trainer drives several of these) ---------
    def begin(self) -> None:
        """(Re)start the clock and the metrics window (done on construction; `fit` and a
        one-pass trainer call it again right before their first step)."""
        self.sae.train()
        self._window: list[tuple[float, float]] = []
        self._started, self._start_step = time.perf_counter(), self.step
        self._last = {"fvu": float("nan"), "l0": float("nan")}
        weights = self.cfg.granularity_weights
        self._weights = torch.tensor(weights, device=self.device) if weights else None

    @property
    def done(self) -> bool:
        return self.step >= self.cfg.total_steps

    def train_step(self, x: torch.Tensor) -> dict[str, float] | None:
        """One optimizer step on this process's batch x (left unchanged); returns the
        metrics record when this step wrote one."""
        cfg = self.cfg
        x = x.to(self.device, non_blocking=True)
        self._check_batch(x, self.step)
        lr = learning_rate(self.step, cfg.total_steps, cfg.peak_lr, cfg.lr_warmup_steps,
                           cfg.lr_decay_fraction)
        parts = self._update(x, lr, self._weights, cfg.resolved_k_aux(self.sae.d_in))
        self.step += 1
        stats = self.dist.all_reduce(torch.stack([
            parts.fvu, parts.code.l0().float().sum(), parts.aux_loss, parts.loss.detach(),
        ]).double())
        # Nothing of this step outlives it: a code or batch kept into the next step
        # sits amid that step's freed buffers and makes the heap grow around it.
        del parts, x
        self._window.append((float(stats[0]), float(stats[1]) / cfg.batch_size))
        if self.step % cfg.log_every == 0 or self.step == cfg.total_steps:
            self._last = self._log(self._window, float(stats[3]), float(stats[2]), lr)
            self._window = []
            return self._last
        return None

    def finish(self) -> TrainResult:
        """Save the final SAE (with a run directory) and report."""
        cfg = self.cfg
        seconds = time.perf_counter() - self._started
        sae_path = self._finish()
        done = self.step - self._start_step
        return TrainResult(
            steps=self.step, tokens=self.step * cfg.batch_size, fvu=self._last["fvu"],
            l0=self._last["l0"], dead_fraction=self.tracker.dead_fraction(), seconds=seconds,
            tokens_per_second=done * cfg.batch_size / seconds if seconds > 0 else 0.0,
            sae_path=sae_path,
        )

    def _update(self, x: torch.Tensor, lr: float, weights: torch.Tensor | None,
                k_aux: int) -> LossParts:
        """One optimizer step on batch x; returns the loss parts (code, fvu, aux loss)."""
        sae, cfg = self.sae, self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        parts = sae_loss(
            sae, x, granularities=self._granularities(), weights=weights,
            dead=self.tracker.dead_mask(), k_aux=k_aux, auxk_alpha=cfg.auxk_alpha,
            all_reduce=self.dist.all_reduce,
        )
        parts.loss.backward()
        self.dist.sum_gradients(list(sae.parameters()))
        self._check_finite(parts.loss, lr)
        sae.project_decoder_grad()
        self.optimizer.step()
        # Freed now, not at the next backward: the next forward then never holds them.
        self.optimizer.zero_grad(set_to_none=True)
        sae.normalize_decoder()
        fired = self.dist.all_reduce(self.tracker.fired_counts(parts.code))
        self.tracker.update(fired, cfg.batch_size)
        sae.observe_training_code(parts.code)
        for buffer in sae.buffers():
            self.dist.average_(buffer)
        return parts

    def _check_finite(self, loss: torch.Tensor, lr: float) -> None:
        """Stop before a NaN/Inf loss or gradient reaches the weights (or any file).

        max|g|² must be finite too: AdamW's second moment accumulates g², and an overflow
        there turns the weights' updates into NaN one step later. (`aminmax` propagates NaN
        and is ~7x faster here than an inf-norm.)
        """
        loss = loss.detach()
        checks = [loss.reshape(1)] + [
            torch.stack(torch.aminmax(p.grad)).float().square()
            for p in self.sae.parameters() if p.grad is not None
        ]
        bad = self.dist.all_reduce((~torch.isfinite(torch.cat(checks))).any().double().reshape(1))
        if float(bad[0]) != 0:
            what = ("the loss is not finite" if not torch.isfinite(loss).all() else
                    "the gradient is not finite or its square overflows")
            raise self._diverged(f"{what} (loss {float(loss):.4g}", lr)

    def _diverged(self, what: str, lr: float) -> TrainingDiverged:
        self.metrics.close()
        kept = latest_checkpoint(self.run_dir) if self.run_dir is not None else None
        where = (f"the last good checkpoint {kept} is kept: continue it with a lower rate, "
                 f"e.g. `psae train … --resume --lr {lr / 10:.3g}`" if kept is not None else
                 "no checkpoint was written yet: start again with a lower --lr")
        return TrainingDiverged(
            f"training diverged at step {self.step}: {what}, learning rate {lr:.3g}); {where}"
        )

    def _log(self, window: list[tuple[float, float]], loss: float, aux: float,
             lr: float) -> dict[str, float]:
        record = {
            "step": self.step, "tokens": self.step * self.cfg.batch_size, "loss": loss,
            "fvu": sum(w[0] for w in window) / len(window),
            "l0": sum(w[1] for w in window) / len(window),
            "aux_loss": aux, "dead_fraction": self.tracker.dead_fraction(), "lr": lr,
        }
        if self.dist.is_main:
            self.metrics.write(record)
        return record

    def save_checkpoint(self) -> Path | None:
        if not all(torch.isfinite(p).all() for p in self.sae.parameters()):
            lr = self.optimizer.param_groups[0]["lr"]
            raise self._diverged("the weights are not finite (after the update", lr)
        if self.run_dir is None or not self.dist.is_main:
            self.dist.barrier()
            return None
        folder = save_checkpoint(
            self.run_dir, self.sae, self.optimizer,
            TrainingState(self.step, self.tracker.tokens_since_fired, self.rng.get_state(),
                          self._run_info()),
            keep=self.cfg.keep_checkpoints,
        )
        self.dist.barrier()
        return folder

    def _finish(self) -> str | None:
        self.metrics.close()
        if self.run_dir is None:
            return None
        self.save_checkpoint()
        if not self.dist.is_main:
            return None
        return str(save_sae(self.sae, self.run_dir / FINAL_SAE, overwrite=True))


def train(
    data: object, cfg: TrainConfig | None = None, run_dir: str | Path | None = None,
    resume: bool = False, progress: bool = True, **overrides: Any,
) -> tuple[SparseAutoencoder, TrainResult]:
    """Train an SAE on `data` (tensor, array, .npy path, source or iterable of tensors)."""
    if cfg is None:
        cfg = TrainConfig(**overrides)
    elif overrides:
        cfg = TrainConfig.from_dict({**cfg.to_dict(), **overrides})
    trainer = Trainer(cfg, data, run_dir=run_dir, resume=resume, progress=progress)
    result = trainer.fit()
    return trainer.sae, result
