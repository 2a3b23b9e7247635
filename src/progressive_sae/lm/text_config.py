"""`TextConfig`: where text comes from and how it becomes windows of token ids.

Its own module so that both the document readers (`documents.py`) and the windowing
(`text.py`) can read it; `text.py` re-exports it for callers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from progressive_sae.errors import PSAEError, check_settings

MODES = ("pack", "truncate")
PARTS = ("train", "heldout", "all")
TXT_SPLITS = ("blank_lines", "file")


@dataclass
class TextConfig:
    """Where text comes from and how it becomes windows of token ids."""

    source: str
    """A Hugging Face dataset name or builder ("json", "parquet", …), a folder saved with
    `save_to_disk`, or a local .txt/.jsonl/.parquet file or folder of them."""
    split: str = "train"
    """Dataset split (Hugging Face sources only)."""
    dataset_config: str | None = None
    """Dataset configuration name, the second argument of `load_dataset` (e.g. a subset)."""
    data_files: str | list[str] | None = None
    """`data_files` for `load_dataset` (e.g. with source "json")."""
    text_column: str = "text"
    """Column (dataset, parquet) or field (jsonl) holding the text."""
    streaming: bool = True
    """Stream the Hugging Face dataset instead of downloading it whole."""
    ctx: int = 128
    """Tokens per window, BOS included."""
    mode: str = "pack"
    """'pack' (documents concatenated with EOS, cut into full windows) or 'truncate' (one
    window per document, cut at ctx)."""
    prepend_bos: bool = True
    """Start every window with the tokenizer's BOS token (if it has one)."""
    heldout_fraction: float = 0.0
    """Share of documents set aside as held out (by a stable hash of their text)."""
    part: str = "train"
    """Which documents to read: 'train', 'heldout' or 'all'."""
    seed: int = 0
    """Seed of the held-out hash."""
    txt_split: str = "blank_lines"
    """.txt files: one document per 'blank_lines'-separated block, or per 'file'."""

    def __post_init__(self) -> None:
        if not isinstance(self.source, (str, Path)) or not str(self.source):
            raise PSAEError(f"text source={self.source!r}: expected a dataset name or a path")
        self.source = str(self.source)
        if isinstance(self.data_files, tuple):
            self.data_files = list(self.data_files)
        if isinstance(self.ctx, bool) or not isinstance(self.ctx, int) or self.ctx < 1:
            raise PSAEError(f"ctx={self.ctx!r}: expected a positive integer")
        if self.mode not in MODES:
            raise PSAEError(f"mode={self.mode!r}: expected one of {MODES}")
        if self.part not in PARTS:
            raise PSAEError(f"part={self.part!r}: expected one of {PARTS}")
        if self.txt_split not in TXT_SPLITS:
            raise PSAEError(f"txt_split={self.txt_split!r}: expected one of {TXT_SPLITS}")
        fraction = self.heldout_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
            0 <= fraction < 1
        ):
            raise PSAEError(f"heldout_fraction={fraction!r}: expected a number in [0, 1)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise PSAEError(f"seed={self.seed!r}: expected an integer")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "text config") -> TextConfig:
        check_settings(data, [f.name for f in dataclasses.fields(cls)], where,
                       required=("source",))
        return cls(**data)
