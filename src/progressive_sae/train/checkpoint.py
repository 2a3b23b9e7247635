"""Resumable checkpoints: weights, optimizer, tracker and RNG state, written atomically.

Layout of `<run>/checkpoints/step_00000100/`: cfg.json + sae.safetensors (a loadable SAE),
optimizer.safetensors, trainer.safetensors and state.json. `<run>/checkpoints/LATEST` names
the newest complete one; it is replaced only after that folder is fully written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from progressive_sae.atomic import atomic_directory, write_bytes_atomic
from progressive_sae.errors import PSAEError
from progressive_sae.json_files import read_json_object, to_json
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.io import load_state_checked, read_config, read_tensors, write_sae_files
from progressive_sae.train.adamw import FusedAdamW

LATEST = "LATEST"


@dataclass
class TrainingState:
    """Everything besides the SAE's weights that an exact resume needs."""

    step: int
    tokens_since_fired: torch.Tensor
    rng_state: torch.Tensor
    info: dict[str, Any]
    """JSON-able run facts: train config, d_in, matmul dtype, …"""


def _optimizer_tensors(
    opt: FusedAdamW, names: dict[int, str]
) -> dict[str, torch.Tensor]:
    tensors = {}
    for param, state in opt.state.items():
        for key, value in state.items():
            tensors[f"{names[id(param)]}.{key}"] = value.detach().cpu().contiguous()
    return tensors


def save_checkpoint(
    run_dir: Path, sae: SparseAutoencoder, opt: FusedAdamW, state: TrainingState,
    keep: int = 2,
) -> Path:
    folder = Path(run_dir) / "checkpoints" / f"step_{state.step:08d}"
    names = {id(p): n for n, p in sae.named_parameters()}
    optimizer = _optimizer_tensors(opt, names)
    for name, tensor in optimizer.items():  # the SAE's own tensors are checked as written
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise PSAEError(f"optimizer state {name} holds NaN or Inf values: refusing to "
                            f"write checkpoint {folder}")
    with atomic_directory(folder, overwrite=True) as scratch:
        write_sae_files(sae, scratch)
        save_file(optimizer, str(scratch / "optimizer.safetensors"))
        save_file(
            {"tokens_since_fired": state.tokens_since_fired.cpu().contiguous(),
             "rng_state": state.rng_state.contiguous()},
            str(scratch / "trainer.safetensors"),
        )
        (scratch / "state.json").write_text(
            to_json({"step": state.step, **state.info}, indent=2, sort_keys=True) + "\n"
        )
    write_bytes_atomic(folder.parent / LATEST, folder.name.encode())
    prune_steps(folder.parent, keep)
    return folder


def prune_steps(folder: Path, keep: int) -> None:
    """Delete all but the newest `keep` step_* folders (checkpoints, stream states)."""
    steps = sorted(p for p in folder.glob("step_*") if p.is_dir())
    for old in steps[: max(0, len(steps) - max(keep, 1))]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = Path(run_dir) / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    try:
        folder = pointer.parent / pointer.read_text().strip()
    except UnicodeDecodeError:
        raise PSAEError(f"{pointer} is corrupt: expected the name of a checkpoint folder") from None
    if not folder.is_dir():
        raise PSAEError(f"{pointer} names {folder.name}, which is missing")
    return folder


def checkpoint_at(run_dir: Path, step: int) -> Path | None:
    """The checkpoint of step `step` (None when there is no checkpoint at all)."""
    if latest_checkpoint(run_dir) is None:
        return None
    folder = Path(run_dir) / "checkpoints" / f"step_{step:08d}"
    if not folder.is_dir():
        raise PSAEError(f"{run_dir} has no checkpoint of step {step}, where the other runs "
                        "of its one-pass training stopped: train it again from the start")
    return folder


def load_checkpoint(
    folder: Path, sae: SparseAutoencoder, opt: FusedAdamW
) -> TrainingState:
    """Restore `sae` and `opt` in place from a checkpoint folder; return the rest."""
    state_file = folder / "state.json"
    info = read_json_object(state_file, f"checkpoint {folder} lacks state.json")
    if not isinstance(info.get("step"), int):
        raise PSAEError(f"{state_file}: expected a JSON object with an integer 'step'")
    cfg = read_config(folder)
    if cfg.num_latents != sae.num_latents or cfg.d_in != sae.d_in:
        raise PSAEError(
            f"checkpoint {folder} holds an SAE of {cfg.num_latents} latents × {cfg.d_in}: "
            f"expected {sae.num_latents} × {sae.d_in} from the run's config"
        )
    load_state_checked(sae, read_tensors(folder / "sae.safetensors"), str(folder))
    opt_tensors = read_tensors(folder / "optimizer.safetensors")
    trainer = read_tensors(folder / "trainer.safetensors")
    for key in ("tokens_since_fired", "rng_state"):
        if key not in trainer:
            raise PSAEError(f"{folder / 'trainer.safetensors'} lacks {key!r}")
    names = dict(sae.named_parameters())
    unknown = sorted({key.rpartition(".")[0] for key in opt_tensors} - set(names))
    if unknown:
        raise PSAEError(
            f"{folder / 'optimizer.safetensors'} names unknown parameter {unknown[0]!r}"
        )
    opt.state.clear()
    for name, param in names.items():  # parameter order, as a fresh optimizer would have it
        for key, value in opt_tensors.items():
            if key.rpartition(".")[0] == name:
                opt.state[param][key.rpartition(".")[2]] = value.to(param.device)
    step = info.pop("step")
    return TrainingState(step, trainer["tokens_since_fired"], trainer["rng_state"], info)
