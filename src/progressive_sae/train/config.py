"""Everything a training run needs to know, as one flat dataclass."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from progressive_sae.errors import PSAEError
from progressive_sae.sae.config import ACTIVATIONS, validate_granularities

FIELD_KINDS = {"granularities": list, "granularity_weights": list, "lr": float, "k_aux": int,
               "dead_tokens": int, "wandb_project": str}
"""Kinds of the fields whose default is None (the others: the default's type)."""
KIND_NAMES = {int: "an integer", float: "a number", str: "a string", list: "a list of numbers"}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


MATMUL_DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class TrainConfig:
    """Hyper-parameters of one SAE training run."""

    num_latents: int = 4096
    """Dictionary size N."""
    k: int = 32
    """Active latents per input (TopK) or per input on average (BatchTopK)."""
    activation: str = "topk"
    """'topk' or 'batchtopk'."""
    granularities: list[int] | None = None
    """Fixed Matryoshka sizes m_1 < … < N (N appended if missing); None = plain SAE."""
    granularity_weights: list[float] | None = None
    """Weights c_m of each Matryoshka term; None = 1/|M| each."""
    sampled_granularities: int = 0
    """If > 0, draw this many inner sizes uniformly from 1..N-1 at every step."""
    batch_size: int = 4096
    """Activations (tokens) per optimizer step, over all processes."""
    total_tokens: int = 10_000_000
    """Tokens to train on; the schedule is laid out over them."""
    lr: float | None = None
    """Peak AdamW learning rate; None = lr_scale / sqrt(N / 2^14)."""
    lr_scale: float = 2e-3
    """Base rate behind the default lr, at N = 16384."""
    lr_warmup_steps: int = 10
    """Linear warm-up steps."""
    lr_decay_fraction: float = 0.2
    """Final fraction of the steps over which the rate decays linearly to zero."""
    beta1: float = 0.9
    """AdamW first-moment decay."""
    beta2: float = 0.999
    """AdamW second-moment decay."""
    eps: float = 1e-8
    """AdamW epsilon."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    auxk_alpha: float = 1 / 32
    """Weight α of the AuxK loss."""
    k_aux: int | None = None
    """Latents AuxK uses; None = min(512, d_in / 2)."""
    dead_tokens: int | None = None
    """Tokens without firing after which a latent is dead; None = min(10M, total/10)."""
    b_dec_init: str = "geometric_median"
    """'geometric_median', 'mean' or 'zero'."""
    init_rows: int = 8192
    """Rows of the first batches used to initialise b_dec."""
    seed: int = 0
    """Seed of the initial weights and the sampled granularities."""
    log_every: int = 10
    """Steps between metrics-log lines."""
    checkpoint_every: int = 0
    """Steps between checkpoints (0 = only the final one)."""
    keep_checkpoints: int = 2
    """Most recent checkpoints kept on disk."""
    device: str = "cpu"
    """'cpu' or 'cuda'."""
    matmul_dtype: str = "auto"
    """Dtype of the dense product that proposes latents: 'auto' (bf16 where native, else
    fp32), 'float32' or 'bfloat16'. Speed only: the chosen latents, their values and every
    gradient are those of the exact fp32 pre-activations whatever it is."""
    wandb_project: str | None = None
    """Log to this Weights & Biases project as well (needs the wandb package)."""

    def __post_init__(self) -> None:
        self._check_types()
        if self.activation not in ACTIVATIONS or self.activation == "jumprelu":
            raise PSAEError(f"activation={self.activation!r}: expected 'topk' or 'batchtopk'")
        if self.num_latents <= 0:
            raise PSAEError(f"num_latents={self.num_latents}: expected a positive integer")
        if not 0 < self.k < self.num_latents:
            raise PSAEError(f"k={self.k}: expected 0 < k < num_latents={self.num_latents}")
        if self.batch_size <= 0:
            raise PSAEError(f"batch_size={self.batch_size}: expected a positive integer")
        if self.total_tokens < self.batch_size:
            raise PSAEError(
                f"total_tokens={self.total_tokens}: expected at least one batch "
                f"({self.batch_size} tokens)"
            )
        if self.granularities is not None:
            if self.sampled_granularities:
                raise PSAEError("give either granularities or sampled_granularities, not both")
            self.granularities = validate_granularities(self.granularities, self.num_latents)
            if self.granularity_weights is not None and len(self.granularity_weights) != len(
                self.granularities
            ):
                raise PSAEError(
                    f"granularity_weights has {len(self.granularity_weights)} entries: "
                    f"expected one per granularity ({len(self.granularities)})"
                )
        elif self.granularity_weights is not None:
            raise PSAEError("granularity_weights needs granularities")
        if self.sampled_granularities < 0:
            raise PSAEError(
                f"sampled_granularities={self.sampled_granularities}: expected ≥ 0"
            )
        if self.lr is not None and not self.lr > 0:
            raise PSAEError(f"lr={self.lr}: expected a positive number")
        if self.b_dec_init not in ("geometric_median", "mean", "zero"):
            raise PSAEError(
                f"b_dec_init={self.b_dec_init!r}: expected 'geometric_median', 'mean' or 'zero'"
            )
        for name in ("log_every", "init_rows", "k_aux", "dead_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise PSAEError(f"{name}={value}: expected a positive integer")
        for name in ("checkpoint_every", "lr_warmup_steps"):
            if getattr(self, name) < 0:
                raise PSAEError(f"{name}={getattr(self, name)}: expected an integer ≥ 0")
        if self.matmul_dtype not in MATMUL_DTYPES:
            raise PSAEError(
                f"matmul_dtype={self.matmul_dtype!r}: expected one of {list(MATMUL_DTYPES)}"
            )
        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise PSAEError(f"device={self.device!r}: expected 'cpu' or 'cuda'") from None
        if device.type not in ("cpu", "cuda"):
            raise PSAEError(f"device={self.device!r}: expected 'cpu' or 'cuda'")

    def _check_types(self) -> None:
        """Each field of the kind its default has; numbers written as text ('1e-3') are read."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            kind = FIELD_KINDS.get(f.name, type(f.default))
            if kind is float and isinstance(value, str):
                with contextlib.suppress(ValueError):
                    value = float(value)
                    setattr(self, f.name, value)
            if kind is list:
                ok = isinstance(value, (list, tuple)) and all(map(_is_number, value))
            elif kind is float:
                ok = _is_number(value)
            else:
                ok = isinstance(value, kind) and not isinstance(value, bool)
            if not ok:
                raise PSAEError(f"{f.name}={value!r}: expected {KIND_NAMES[kind]}")

    @property
    def total_steps(self) -> int:
        return self.total_tokens // self.batch_size

    @property
    def peak_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return self.lr_scale / math.sqrt(self.num_latents / 2**14)

    def resolved_dead_tokens(self) -> int:
        if self.dead_tokens is not None:
            return self.dead_tokens
        return max(self.batch_size, min(10_000_000, self.total_tokens // 10))

    def resolved_k_aux(self, d_in: int) -> int:
        return self.k_aux if self.k_aux is not None else min(512, max(1, d_in // 2))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PSAEError(
                f"unknown key {unknown[0]!r} in {source}; expected one of {sorted(known)}"
            )
        try:
            return cls(**data)
        except TypeError as err:
            raise PSAEError(f"{source}: {err}") from None
