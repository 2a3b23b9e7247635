"""Latent records over a language model and text, without a ready activation cache.

The LM's activations at `hook` are first written to an activation cache inside `work`
(`lm.extract`: streamed in batches, resumable, with token ids), then records are collected
from it (resumable too). Memory stays bounded by the batch and the records kept; the cache
costs disk (d · 2 bytes per token in float16), and is reused by a second call, e.g. for
another SAE on the same hook and text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from progressive_sae.errors import PSAEError
from progressive_sae.interp.collect import collect_records
from progressive_sae.interp.config import InterpConfig, RecordsConfig
from progressive_sae.interp.records import LatentRecords
from progressive_sae.lm.text import TextConfig
from progressive_sae.sae.base import SparseAutoencoder


def lm_activation_cache(lm: Any, hook: str, text: TextConfig, work: str | Path,
                        max_tokens: int, dtype: str = "float16",
                        progress: bool = False) -> Path:
    """The activation cache of `hook` on `text` under `work/activations` (made if missing)."""
    from progressive_sae.lm.extract import extract

    folder = Path(work) / "activations"
    extract(lm, text, hook, folder, max_tokens, dtype=dtype, progress=progress)
    return folder


def collect_records_from_lm(
    sae: SparseAutoencoder, lm: Any, hook: str, text: TextConfig, work: str | Path,
    max_tokens: int, cfg: RecordsConfig | InterpConfig | None = None,
    dtype: str = "float16", progress: bool = False,
) -> LatentRecords:
    """Records of `sae` over `max_tokens` tokens of `text` through `lm` at `hook`; saved in
    `work/records` (an interrupted call, run again, resumes both stages)."""
    hidden = getattr(getattr(getattr(lm, "model", None), "config", None), "hidden_size", None)
    if hidden is not None and int(hidden) != sae.d_in:
        raise PSAEError(f"the SAE reads d_in={sae.d_in} but the language model's hidden "
                        f"size is {hidden}")
    cache = lm_activation_cache(lm, hook, text, work, max_tokens, dtype, progress)
    return collect_records(sae, cache, cfg, out=Path(work) / "records", progress=progress)
