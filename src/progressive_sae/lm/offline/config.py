"""The offline LM's training settings: the shipped recipe is the defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from progressive_sae.errors import PSAEError

RESUMABLE_CHANGES = frozenset({"max_steps", "max_seconds", "eval_every", "log_every",
                               "checkpoint_seconds", "keep_checkpoint", "threads",
                               "attn_implementation"})
"""Config fields a resumed run may change (budgets and bookkeeping, not the model or data)."""


@dataclass
class LMTrainConfig:
    """Everything one offline-LM training run needs; defaults build the shipped model."""

    n_layer: int = 4
    """Transformer blocks."""
    n_embd: int = 256
    """Residual-stream width d_model."""
    n_head: int = 8
    """Attention heads per block."""
    n_positions: int = 256
    """Context length (positions 0..n_positions-1, position 0 = BOS)."""
    vocab_size: int = 4096
    """BPE vocabulary size, the special token included."""
    dropout: float = 0.0
    """Residual, embedding and attention dropout."""
    attn_implementation: str = "sdpa"
    """Attention kernel while training ('sdpa' or 'eager'; the saved folder names none)."""
    heldout_fraction: float = 0.05
    """Share of corpus documents (chosen by name hash) held out from all training."""
    max_train_documents: int | None = None
    """Train on only the first this-many training documents (None = all; for quick tests)."""
    max_heldout_documents: int | None = None
    """Score on only the first this-many held-out documents (None = all)."""
    max_heldout_windows: int | None = None
    """Score on only the first this-many held-out windows (None = all)."""
    batch_size: int = 16
    """Windows per optimizer step."""
    lr: float = 2e-3
    """Peak AdamW learning rate."""
    min_lr_fraction: float = 0.05
    """The cosine decay ends at lr · min_lr_fraction."""
    warmup_steps: int = 50
    """Linear warm-up steps."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay on matrices and embeddings (not on biases or norms)."""
    beta1: float = 0.9
    """AdamW first-moment decay."""
    beta2: float = 0.95
    """AdamW second-moment decay."""
    grad_clip: float = 1.0
    """Global gradient-norm clip (0 = none)."""
    max_steps: int = 1000
    """Optimizer steps; the schedule is laid out over them (1000 × 16 × 256 ≈ 7.4 epochs)."""
    max_seconds: float | None = None
    """Wall-clock training budget; if set, the schedule follows whichever budget runs out first."""
    eval_every: int = 100
    """Steps between held-out evaluations (0 = only at the end)."""
    log_every: int = 20
    """Steps between log lines."""
    checkpoint_seconds: float = 180.0
    """Seconds of training between resumable checkpoints."""
    keep_checkpoint: bool = False
    """Keep checkpoint/ after the final export (else it is removed)."""
    threads: int = 2
    """torch intra-op threads."""
    seed: int = 0
    """Seed of the initial weights and the data order."""
    bigram_k: float | None = None
    """Add-k smoothing of the bigram baseline; None = best of a small grid on held-out."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LMTrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise PSAEError(f"unknown LMTrainConfig fields: {sorted(unknown)}")
        return cls(**d)

    def validate(self) -> None:
        for name in ("n_layer", "n_embd", "n_head", "n_positions", "batch_size", "max_steps",
                     "threads"):
            if getattr(self, name) < 1:
                raise PSAEError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise PSAEError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.vocab_size < 258:
            raise PSAEError(f"vocab_size must be >= 258, got {self.vocab_size}")
        if not 0 < self.heldout_fraction < 1:
            raise PSAEError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        if self.lr <= 0:
            raise PSAEError(f"lr must be > 0, got {self.lr}")
        if self.attn_implementation not in ("sdpa", "eager"):
            raise PSAEError(f"attn_implementation must be 'sdpa' or 'eager', got "
                             f"{self.attn_implementation!r}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise PSAEError(f"max_seconds must be > 0, got {self.max_seconds}")
