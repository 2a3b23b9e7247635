"""`psae run`: train what is missing, permute, score everything, analyse, report.

Everything lands under `cfg.out`:
  acts/train, acts/heldout   activation caches (LM pipelines; extraction resumes; no
                             acts/train with extract.stream: true)
  runs/<name>/               one training run each (reused when finished, resumed if not)
  runs/stream/               a streamed grid's position in its one pass (experiment/streamed.py)
  saes/<name>+<ranking>/     the permuted copies
  evaluations.jsonl          every scored point, appended as it finishes (never redone)
  plots/*.png, results.json, report.html, report.md
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from progressive_sae.data.source import ActivationSource, RowRange
from progressive_sae.errors import PSAEError
from progressive_sae.evaluation import EvalSet
from progressive_sae.experiment.config import ExperimentConfig
from progressive_sae.experiment.runs import PlannedRun, run_train_config
from progressive_sae.progressive import LatentStatistics, ranking
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.io import load_sae, save_sae
from progressive_sae.train.checkpoint import latest_checkpoint
from progressive_sae.train.trainer import FINAL_SAE, Trainer

EVALUATIONS_FILE = "evaluations.jsonl"
RANKING_LABELS = {"mean_sq": "E[z²]", "frequency": "frequency"}


@dataclass
class Prepared:
    """The data an experiment trains on and scores with."""

    train: Any
    """Training activation source."""
    rank: ActivationSource
    """Held-out rows that rank latents."""
    evalset: EvalSet
    """Held-out rows (and LM windows) that are scored."""
    fingerprint: str
    """Identifies the scoring data; cached points are reused only for the same one."""
    lm: Any = None
    """The language model (LM pipelines only), for the interpretability and seed-002 stages."""
    hook: str | None = None
    """Hook point the activations were read at (LM pipelines only)."""
    heldout_cache: Path | None = None
    """The held-out activation cache in text order, with token ids (LM pipelines only)."""
    stream: Any = None
    """The StreamConfig the grid trains from (extract.stream: true); `train` then holds
    only the rows distillation reads, computed anew by the LM each time."""


def prepare_data(cfg: ExperimentConfig, progress: bool = True) -> Prepared:
    """Build (or reuse) the activation caches and the held-out sets."""
    from progressive_sae.config_files import data_source
    from progressive_sae.experiment.streamed import stream_config

    stream = stream_config(cfg) if cfg.streams else None
    if not cfg.uses_lm:
        train = data_source(cfg.data, cfg.base)
        heldout = data_source(cfg.eval_data, cfg.base)
        lm = evalset_lm = input_ids = hook = None
    else:
        train, heldout, lm, input_ids, hook = _lm_data(cfg, stream, progress)
        evalset_lm = lm if input_ids is not None else None
    if not isinstance(heldout, ActivationSource) or len(heldout) <= cfg.eval.rank_rows:
        rows = len(heldout) if isinstance(heldout, ActivationSource) else "?"
        raise PSAEError(f"the held-out set has {rows} rows: expected more than "
                        f"eval.rank_rows={cfg.eval.rank_rows} (the rest are scored)")
    if heldout.d_in != train.d_in:
        raise PSAEError(f"held-out activations have width {heldout.d_in}, training ones "
                        f"{train.d_in}: expected the same hook point")
    rank = RowRange(heldout, 0, cfg.eval.rank_rows)
    scored = RowRange(heldout, cfg.eval.rank_rows, len(heldout))
    evalset = EvalSet(scored, cfg.eval.rsa_rows, evalset_lm, input_ids, hook,
                      batch_size=cfg.eval.batch_size, windows_per_pass=cfg.eval.windows_per_pass)
    fingerprint = json.dumps([len(heldout), cfg.eval.rank_rows, cfg.eval.rsa_rows,
                              None if input_ids is None else list(input_ids.shape)])
    return Prepared(train, rank, evalset, fingerprint, lm, hook,
                    cfg.out / "acts" / "heldout" if lm is not None else None, stream)


def _lm_data(cfg: ExperimentConfig, stream: Any, progress: bool):
    from progressive_sae.data.cache import CachedActivations
    from progressive_sae.lm import load_lm
    from progressive_sae.lm.extract import extract
    from progressive_sae.lm.model import OFFLINE_DEFAULT
    from progressive_sae.lm.text import OFFLINE_CORPUS, TextConfig, take_windows

    text = TextConfig.from_dict({**cfg.text, "part": "train"}, where="text")
    if text.source != OFFLINE_CORPUS and text.heldout_fraction <= 0:
        raise PSAEError("text.heldout_fraction is 0: set it (e.g. 0.01) so that some documents "
                        "are held out for scoring")
    heldout_text = TextConfig.from_dict({**cfg.text, "part": "heldout"}, where="text")
    lm = load_lm(cfg.lm.get("model", OFFLINE_DEFAULT), device=cfg.lm.get("device", "cpu"),
                 dtype=cfg.lm.get("dtype"))
    hook = cfg.extract["hook"]
    options = {k: v for k, v in cfg.extract.items() if k in ("batch_size", "dtype", "exclude_bos")}
    if stream is not None:  # trained from a live pass: only distillation reads rows here
        from progressive_sae.experiment.streamed import text_order_rows

        train = text_order_rows(lm, stream)
    else:
        max_tokens = cfg.extract.get("max_tokens", cfg.train.total_tokens)
        extract(lm, text, hook, cfg.out / "acts" / "train", max_tokens, progress=progress,
                **options)
        train = CachedActivations(cfg.out / "acts" / "train")
    extract(lm, heldout_text, hook, cfg.out / "acts" / "heldout", cfg.eval.heldout_tokens,
            progress=progress, **options)
    heldout = CachedActivations(cfg.out / "acts" / "heldout", shuffle_buffer=0)
    input_ids = None
    if cfg.eval.lm_windows:
        windows = take_windows(heldout_text, lm.tokenizer, cfg.eval.lm_windows)
        input_ids = torch.as_tensor(windows, dtype=torch.long)
    return train, heldout, lm, input_ids, hook


def train_or_reuse(
    run: PlannedRun, cfg: ExperimentConfig, data: Any, progress: bool = True
) -> tuple[SparseAutoencoder, bool]:
    """The run's finished SAE, trained now (or resumed from its last checkpoint) or reused;
    the flag says whether it is new."""
    folder = cfg.out / "runs" / run.name
    if (folder / FINAL_SAE).is_dir():
        return load_sae(folder / FINAL_SAE), False
    resume = folder.is_dir() and latest_checkpoint(folder) is not None
    if folder.is_dir() and not resume:  # started but killed before its first checkpoint
        shutil.rmtree(folder)
    print(f"[{run.name}] {'resuming' if resume else 'training'} in {folder}")
    trainer = Trainer(run_train_config(run, cfg), data, run_dir=folder, resume=resume,
                      progress=progress)
    result = trainer.fit()
    print(f"[{run.name}] {result.tokens_per_second:,.0f} tokens/s, train FVU {result.fvu:.4f}")
    return trainer.sae, True


def permuted(
    name: str, sae: SparseAutoencoder, stats: LatentStatistics, by: str, out: Path
) -> SparseAutoencoder:
    """`sae` reordered by `by`, saved under out/saes (reused when there)."""
    folder = out / "saes" / f"{name}+{by}"
    if folder.is_dir():
        return load_sae(folder, device=sae.W_dec.device)
    result = sae.permute(ranking(stats, by))
    result.cfg.metadata["permuted_by"] = by
    result.cfg.metadata["permuted_rows"] = stats.rows
    save_sae(result, folder, overwrite=True)
    return result


def main_runs(cfg: ExperimentConfig, runs: dict[str, PlannedRun]) -> dict[str, str]:
    """Family → run name of the runs at the main N and k (the ones the paper compares)."""
    return {r.family: r.name for r in runs.values()
            if r.num_latents == cfg.grid.num_latents and r.k == cfg.grid.k}


def distilled(name: str, sae: SparseAutoencoder, granularity: int, data: object, out: Path
              ) -> tuple[SparseAutoencoder, bool]:
    """`sae` distilled to `granularity` latents (progressive_sae.distill, defaults, no
    fine-tune), saved under out/saes; reused when there and made with today's settings.
    Also returns whether it was made anew."""
    from progressive_sae.distill import METADATA_KEY, DistillConfig, distill

    folder = out / "saes" / f"{name}+distilled-{granularity}"
    if folder.is_dir():
        saved = load_sae(folder, device=sae.W_dec.device)
        if saved.cfg.metadata.get(METADATA_KEY, {}).get("config") == DistillConfig().to_dict():
            return saved, False
    result, _ = distill(sae, data, granularity)
    save_sae(result, folder, overwrite=True)
    return result, True


class EvaluationLog:
    """Scored points on disk (one JSON per line), keyed by (SAE, G, mode, data fingerprint)."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path, self.fingerprint = path, fingerprint
        self.points: dict[tuple, dict] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill: that point is simply redone
                if record.pop("fingerprint", None) == fingerprint:
                    self.points[self.key(record)] = record

    @staticmethod
    def key(record: dict) -> tuple:
        return record["sae"], record["granularity"], record["mode"]

    def get(self, sae: str, granularity: int, mode: str) -> dict | None:
        """The scored record (without the fingerprint), or None."""
        return self.points.get((sae, granularity, mode))

    def add(self, record: dict) -> None:
        self.points[self.key(record)] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({**record, "fingerprint": self.fingerprint}) + "\n")
            f.flush()

    def forget(self, sae: str) -> None:
        self.points = {k: v for k, v in self.points.items() if k[0] != sae}

    def __iter__(self) -> Iterator[dict]:
        return iter(self.points.values())


