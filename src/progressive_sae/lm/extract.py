"""Running a language model over text and caching one hook point's activations on disk.

`extract` walks the context windows of a text source in order, runs them through the LM in
batches, keeps every real (non-padding) position, optionally drops the BOS position, and
writes the rows to an activation cache (`progressive_sae.data.cache`). Batches are aligned
to window indices (batch b holds windows b·B … b·B+B-1), so an interrupted extraction that
is run again with the same settings recomputes only the batch it stopped in and produces a
cache byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from progressive_sae.data.cache import STORAGE, CacheWriter
from progressive_sae.errors import PSAEError
from progressive_sae.lm.rows import ActivationFn, lm_device, pass_rows
from progressive_sae.lm.text import TextConfig, bos_id

DEFAULT_DTYPE = "float16"
"""Dtype a cache stores activations in unless told (a streamed grid mixes rows in it too)."""
MAX_BATCH = {"cuda": 512, "cpu": 64}
"""Upper bounds of the automatic batch size (windows per forward pass)."""


def extract(
    lm: Any,
    text_config: TextConfig,
    hook: str,
    out_dir: str | Path,
    max_tokens: int,
    batch_size: int | None = None,
    exclude_bos: bool = True,
    dtype: str = DEFAULT_DTYPE,
    rows_per_shard: int | None = None,
    activation_fn: ActivationFn | None = None,
    progress: bool = True,
) -> Path:
    """Cache `max_tokens` activation rows of `hook` from `lm` on `text_config`'s text.

    Args:
        lm: the language model; `lm.tokenizer` tokenises the text, and `lm` is handed to
            `activation_fn` as is.
        text_config: where the text comes from and how it is cut into windows of ctx tokens.
        hook: the hook point, as `activation_fn` understands it.
        out_dir: the cache folder: new, empty, or a cache from an interrupted run of the same
            extraction (resumed; a finished one is returned as is).
        max_tokens: rows to write (positions kept, after dropping BOS); fewer if the text
            runs out first (the manifest then says `text_exhausted: true`).
        batch_size: windows per forward pass; None: the resumed cache's, else chosen from
            free memory by `auto_batch_size`.
        exclude_bos: drop position 0 of each window when it is the prepended BOS.
        dtype: "float16", "float32" or "bfloat16" (stored as uint16 bits).
        rows_per_shard: rows per shard file; None: ≈256 MiB of activations per shard.
        activation_fn: `fn(lm, input_ids, hook) -> [B, T, d]`; default
            `progressive_sae.lm.hooks.activations`.
        progress: show a tqdm bar.

    Returns the path of the cache's manifest.json.
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise PSAEError(f"max_tokens={max_tokens!r}: expected a positive integer")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise PSAEError(f"batch_size={batch_size!r}: expected a positive integer")
    if dtype not in STORAGE:
        raise PSAEError(f"dtype={dtype!r}: expected one of {sorted(STORAGE)}")
    if not isinstance(hook, str) or not hook:
        raise PSAEError(f"hook={hook!r}: expected the name of a hook point")
    if not isinstance(text_config, TextConfig):
        raise PSAEError(f"text config of type {type(text_config).__name__}: expected TextConfig")
    tokenizer = getattr(lm, "tokenizer", None)
    if tokenizer is None:
        raise PSAEError("the language model has no tokenizer: expected lm.tokenizer")
    if activation_fn is None:
        from progressive_sae.lm.hooks import activations as activation_fn
        from progressive_sae.lm.hooks import resolve_hook

        hook = resolve_hook(lm, hook).name  # checked now, and one name for its aliases

    bos = bos_id(text_config, tokenizer)
    drop_bos = bool(exclude_bos) and bos is not None
    meta = {
        "model": model_name(lm),
        "hook": hook,
        "ctx": text_config.ctx,
        "exclude_bos": bool(exclude_bos),
        "bos_prepended": bos is not None,
        "text": text_config.to_dict(),
        "tokenizer": {"name": str(getattr(lm, "name", "")
                                  or getattr(tokenizer, "name_or_path", "") or ""),
                      "vocab_size": _vocab_size(tokenizer)},
        "max_tokens": max_tokens,
    }
    out_dir = Path(out_dir)
    writer = CacheWriter(out_dir, dtype=dtype, rows_per_shard=rows_per_shard, meta=meta)
    if writer.complete:
        return writer.manifest_path

    recorded = writer.manifest.get("batch_size")
    if batch_size is None:
        batch_size = recorded or auto_batch_size(lm, text_config.ctx)
    elif recorded and recorded != batch_size and writer.shards:
        warnings.warn(
            f"resuming {out_dir} with batch_size={batch_size} (it was started with "
            f"{recorded}): rows may differ from an uninterrupted run in the last bits",
            stacklevel=2,
        )
    writer.note(batch_size=batch_size)

    # Resume at the batch holding the last row on disk; drop the rows already written.
    last = writer.last_sequence()
    start = 0 if last is None else last // batch_size * batch_size
    skip = writer.written_rows_from(start)
    produced = writer.rows_written

    from tqdm.auto import tqdm

    bar = tqdm(total=max_tokens, initial=produced, unit="tok", disable=not progress,
               desc=f"extract {hook}", dynamic_ncols=True)
    try:
        passes = pass_rows(lm, text_config, [hook], batch_size, exclude_bos=drop_bos,
                           dtype=dtype, start_pass=start // batch_size,
                           activation_fn=activation_fn)
        for rows in passes if produced < max_tokens else ():
            acts = _storage(rows.acts[0])
            lo = min(skip, acts.shape[0])
            skip -= lo
            hi = min(acts.shape[0], lo + max_tokens - produced)
            if hi > lo:
                writer.add(acts[lo:hi], rows.tokens[lo:hi], rows.sequences[lo:hi],
                           rows.positions[lo:hi])
                bar.update(hi - lo)
                produced += hi - lo
            if produced >= max_tokens:
                break
    finally:
        bar.close()
    exhausted = produced < max_tokens
    if produced == 0:
        raise PSAEError(f"text source {text_config.source!r} gave no activation rows (each "
                        "window held only its BOS, which exclude_bos drops)")
    if exhausted:
        warnings.warn(f"the text ran out after {produced} of max_tokens={max_tokens} rows; "
                      f"the cache at {out_dir} holds {produced}", stacklevel=2)
    return writer.finish(text_exhausted=exhausted)


def model_name(lm: Any) -> str:
    """A name for the model in the manifest: lm.name, the HF name_or_path, else its class."""
    name = getattr(lm, "name", None)
    if not name:
        model = getattr(lm, "model", lm)
        name = getattr(model, "name_or_path", None) or getattr(
            getattr(model, "config", None), "_name_or_path", None)
    return str(name) if name else type(lm).__name__


def auto_batch_size(lm: Any, ctx: int) -> int:
    """Windows per forward pass from free memory: a quarter of the free memory of the LM's
    device (CUDA: `torch.cuda.mem_get_info`, so after the weights are loaded; CPU: available
    RAM) divided by an upper estimate of one window's peak use, ctx · 4 bytes · (32·d_model +
    heads·ctx) — about 32 live hidden-size vectors per token and one layer's attention
    scores, heads = d_model/64; no logits, as the default activation function stops after
    the hooked block — rounded down to a power of two in [1, 512] on CUDA, [1, 64] on CPU
    (where larger batches are no faster)."""
    device = lm_device(lm) or torch.device("cpu")
    d_model = _int_attr(lm, ("d_model",)) or _config_int(lm, ("hidden_size", "n_embd")) or 1024
    heads = max(1, d_model // 64)
    per_window = ctx * 4 * (32 * d_model + heads * ctx)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cap = MAX_BATCH["cuda"]
    else:
        free = _available_ram()
        cap = MAX_BATCH["cpu"]
    fit = max(1, int(free // 4 // per_window))
    return min(cap, 1 << (fit.bit_length() - 1))


# -- helpers ---------------------------------------------------------------------------------


def _storage(acts: torch.Tensor) -> np.ndarray:
    """CPU rows as the cache's storage array (bfloat16 as its raw bits, uint16)."""
    if acts.dtype == torch.bfloat16:
        return acts.view(torch.int16).numpy().view(np.uint16)
    return acts.numpy()


def _vocab_size(tokenizer: Any) -> int | None:
    try:
        return int(len(tokenizer))
    except TypeError:
        value = getattr(tokenizer, "vocab_size", None)
        return int(value) if value is not None else None


def _int_attr(obj: Any, names: tuple[str, ...]) -> int | None:
    for name in names:
        try:
            value = getattr(obj, name, None)
        except Exception:  # properties of half-built wrappers
            value = None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _config_int(lm: Any, names: tuple[str, ...]) -> int | None:
    config = getattr(getattr(lm, "model", lm), "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    return _int_attr(config, names) if config is not None else None


def _available_ram() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30

