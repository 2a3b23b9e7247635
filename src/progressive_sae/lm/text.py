"""Text sources: documents (read by `documents.py`), split and tokenised into context windows.

Documents that are empty or only whitespace are skipped. Each document falls in the held-out
part when a stable hash of (seed, its text) lands below `heldout_fraction`, so the split is
by document, disjoint, independent of order and identical from run to run (duplicated
documents land on the same side).

Windows of at most `ctx` tokens start with the tokenizer's BOS when `prepend_bos` is on and
the tokenizer has one. `mode="pack"` concatenates the documents, each followed by EOS (BOS
when there is no EOS, nothing when there is neither), and cuts the stream into windows of
ctx tokens (BOS + ctx-1 stream tokens); the last window may be shorter. `mode="truncate"`
makes one window per document: BOS + its first ctx-1 tokens (no EOS).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from progressive_sae.errors import PSAEError
from progressive_sae.lm.documents import raw_documents

# TextConfig lives in text_config.py (documents.py reads it too); callers import it from here.
from progressive_sae.lm.text_config import TextConfig

TOKENIZE_GROUP = 64
"""Documents tokenised per call (batching only; the tokens are the same)."""


def is_heldout(text: str, fraction: float, seed: int = 0) -> bool:
    """Whether a document is held out: a stable hash of (seed, text) below `fraction`."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(
        text.encode("utf-8", "surrogatepass"), digest_size=8, key=str(seed).encode()
    ).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < fraction


OFFLINE_CORPUS = "cpython-docs"
"""Source name of the offline default corpus (CPython's pydoc topics + stdlib docstrings)."""


def iter_documents(config: TextConfig) -> Iterator[str]:
    """The non-empty documents of `config.part`, in the source's order."""
    if config.source == OFFLINE_CORPUS:
        yield from _offline_documents(config)
        return
    for text in raw_documents(config):
        if not text.strip():
            continue
        if config.part != "all" and (
            is_heldout(text, config.heldout_fraction, config.seed) != (config.part == "heldout")
        ):
            continue
        yield text


def bos_id(config: TextConfig, tokenizer: Any) -> int | None:
    """The token id that starts each window, or None (no BOS asked for, or none exists)."""
    if not config.prepend_bos:
        return None
    value = getattr(tokenizer, "bos_token_id", None)
    return int(value) if value is not None else None


def separator_id(tokenizer: Any) -> int | None:
    """The token that ends each packed document: EOS, else BOS, else None."""
    for name in ("eos_token_id", "bos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return None


def iter_token_documents(config: TextConfig, tokenizer: Any) -> Iterator[list[int]]:
    """Token ids of each document (no special tokens), tokenised a group at a time."""
    group: list[str] = []
    for text in iter_documents(config):
        group.append(text)
        if len(group) == TOKENIZE_GROUP:
            yield from _tokenize(tokenizer, group)
            group = []
    if group:
        yield from _tokenize(tokenizer, group)


def iter_windows(config: TextConfig, tokenizer: Any) -> Iterator[np.ndarray]:
    """Windows of token ids (int64, 1 ≤ length ≤ ctx), deterministically ordered.

    Raises PSAEError when the source yields no document or no token at all.
    """
    bos = bos_id(config, tokenizer)
    room = config.ctx - (bos is not None)
    if room < 1:
        raise PSAEError(f"ctx={config.ctx}: expected at least 2 when each window starts with BOS")
    head = [bos] if bos is not None else []
    documents = tokens = 0
    if config.mode == "truncate":
        for ids in iter_token_documents(config, tokenizer):
            documents += 1
            if ids:
                tokens += len(ids)
                yield np.asarray(head + ids[:room], dtype=np.int64)
    else:
        sep = separator_id(tokenizer)
        tail = [sep] if sep is not None else []
        buffer: list[int] = []
        for ids in iter_token_documents(config, tokenizer):
            documents += 1
            if not ids:
                continue
            tokens += len(ids)
            buffer.extend(ids)
            buffer.extend(tail)
            if len(buffer) >= room:
                full = len(buffer) // room * room
                for start in range(0, full, room):
                    yield np.asarray(head + buffer[start:start + room], dtype=np.int64)
                buffer = buffer[full:]
        if buffer and tokens:
            yield np.asarray(head + buffer, dtype=np.int64)
    if documents == 0:
        raise PSAEError(f"text source {config.source!r} ({_part_words(config)}) holds no "
                        "documents: expected at least one non-empty text")
    if tokens == 0:
        raise PSAEError(f"text source {config.source!r} ({_part_words(config)}) gave no tokens: "
                        f"its {documents} documents all tokenise to nothing")


def _part_words(config: TextConfig) -> str:
    if config.part == "all":
        return "all documents"
    return f"{config.part} part, held-out fraction {config.heldout_fraction}"


def _tokenize(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    try:
        encoded = tokenizer(texts, add_special_tokens=False, verbose=False)
    except TypeError:  # tokenizers without the `verbose` switch
        encoded = tokenizer(texts, add_special_tokens=False)
    return [list(ids) for ids in encoded["input_ids"]]


def _offline_documents(config: TextConfig) -> Iterator[str]:
    # The corpus keeps its own split by document name — the one the shipped LM and its
    # tokenizer were trained with — so "heldout" text is unseen by the LM as well.
    from progressive_sae.lm.offline.corpus import build_corpus

    corpus = build_corpus()
    parts = {"train": corpus.train, "heldout": corpus.heldout,
             "all": corpus.train + corpus.heldout}[config.part]
    for doc in parts:
        if doc.text.strip():
            yield doc.text


def take_windows(config: TextConfig, tokenizer: Any, count: int) -> np.ndarray:
    """The first `count` windows of the text as a [count', ctx] array (count' ≤ count when
    the text runs out; at least one, else a clear error)."""
    windows = []
    for window in iter_windows(config, tokenizer):
        windows.append(window)
        if len(windows) == count:
            break
    if not windows:
        raise PSAEError(f"the {config.part} text of {config.source!r} gives no full window of "
                        f"ctx={config.ctx} tokens")
    return np.stack(windows)
