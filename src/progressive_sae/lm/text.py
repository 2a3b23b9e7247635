"""Text sources: documents from a dataset or local files, tokenised into context windows.

Documents come, in a fixed order, from
* a Hugging Face dataset: a hub name (`load_dataset(name, split=…, streaming=True)`), a
  builder such as `"json"` with `data_files`, or a folder written by `save_to_disk`;
* local files: `.txt` (by default one document per blank-line-separated block; with
  `txt_split="file"` one document per file), `.jsonl` (one JSON object per line, the text in
  `text_column`) and `.parquet` (the `text_column` column, read with pyarrow); a folder is
  read as all such files below it, sorted by their relative path.

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

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from progressive_sae.errors import PSAEError

FILE_TYPES = (".txt", ".jsonl", ".parquet")
MODES = ("pack", "truncate")
PARTS = ("train", "heldout", "all")
TXT_SPLITS = ("blank_lines", "file")
SAVED_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
TOKENIZE_GROUP = 64
"""Documents tokenised per call (batching only; the tokens are the same)."""


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
        if not isinstance(data, dict):
            raise PSAEError(f"{where} {data!r}: expected a mapping of settings")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise PSAEError(f"unknown key {unknown[0]!r} in {where}; expected keys: {known}")
        if "source" not in data:
            raise PSAEError(f"{where} lacks the required key 'source'")
        return cls(**data)


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
    for text in _raw_documents(config):
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


# -- reading -----------------------------------------------------------------------------


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


def _looks_like_path(source: str) -> bool:
    return (
        source.startswith(("/", "./", "../", "~"))
        or Path(source).suffix in FILE_TYPES + (".json", ".csv", ".gz")
    )


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


def _raw_documents(config: TextConfig) -> Iterator[str]:
    path = Path(config.source).expanduser()
    if path.exists():
        if path.is_dir() and any((path / m).is_file() for m in SAVED_DATASET_MARKERS):
            yield from _saved_dataset_documents(path, config)
        elif path.is_dir():
            files = sorted(
                (p for p in path.rglob("*") if p.is_file() and p.suffix in FILE_TYPES
                 and not any(part.startswith(".") for part in p.relative_to(path).parts)),
                key=lambda p: p.relative_to(path).as_posix(),
            )
            if not files:
                raise PSAEError(f"{path} holds no {'/'.join(FILE_TYPES)} files")
            for file in files:
                yield from _file_documents(file, config)
        else:
            yield from _file_documents(path, config)
        return
    if _looks_like_path(config.source):
        raise PSAEError(f"text source {config.source} does not exist")
    yield from _hub_documents(config)


def _file_documents(path: Path, config: TextConfig) -> Iterator[str]:
    if path.suffix == ".txt":
        yield from _txt_documents(path, config.txt_split)
    elif path.suffix == ".jsonl":
        yield from _jsonl_documents(path, config.text_column)
    elif path.suffix == ".parquet":
        yield from _parquet_documents(path, config.text_column)
    else:
        raise PSAEError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}; expected one of "
            f"{list(FILE_TYPES)}, a folder of them, or a Hugging Face dataset"
        )


def _open_text(path: Path):
    return open(path, encoding="utf-8", newline=None)


def _txt_documents(path: Path, txt_split: str) -> Iterator[str]:
    try:
        with _open_text(path) as f:
            if txt_split == "file":
                yield f.read()
                return
            block: list[str] = []
            for line in f:
                if line.strip():
                    block.append(line)
                elif block:
                    yield "".join(block).rstrip("\n")
                    block = []
            if block:
                yield "".join(block).rstrip("\n")
    except UnicodeDecodeError as err:
        raise PSAEError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None


def _jsonl_documents(path: Path, field: str) -> Iterator[str]:
    try:
        with _open_text(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise PSAEError(f"{path} line {number} is not JSON ({err.msg})") from None
                if not isinstance(record, dict):
                    raise PSAEError(f"{path} line {number}: expected a JSON object with a "
                                    f"{field!r} field")
                if field not in record:
                    raise PSAEError(f"{path} line {number} has no field {field!r}; available "
                                    f"fields: {sorted(record)}")
                yield _as_text(record[field], f"{path} line {number} field {field!r}")
    except UnicodeDecodeError as err:
        raise PSAEError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None


def _parquet_documents(path: Path, column: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for unreadable files
        raise PSAEError(f"{path} is not a readable parquet file ({_first_line(err)})") from None
    names = table.schema_arrow.names
    if column not in names:
        raise PSAEError(f"{path} has no column {column!r}; available columns: {names}")
    for batch in table.iter_batches(columns=[column], batch_size=1024):
        for value in batch.column(0).to_pylist():
            yield _as_text(value, f"{path} column {column!r}")


def _as_text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PSAEError(f"{where} holds a {type(value).__name__}: expected text")
    return value


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _saved_dataset_documents(path: Path, config: TextConfig) -> Iterator[str]:
    import datasets

    try:
        data = datasets.load_from_disk(str(path))
    except Exception as err:
        raise PSAEError(f"{path}: could not load the saved dataset ({_first_line(err)})") from None
    if isinstance(data, datasets.DatasetDict):
        if config.split not in data:
            raise PSAEError(f"{path} has no split {config.split!r}; available splits: "
                            f"{sorted(data)}")
        data = data[config.split]
    yield from _dataset_documents(data, config, str(path))


def _hub_documents(config: TextConfig) -> Iterator[str]:
    import datasets

    try:
        data = datasets.load_dataset(
            config.source, config.dataset_config, split=config.split,
            data_files=config.data_files, streaming=config.streaming,
        )
    except Exception as err:  # network, missing dataset, bad split: all one line for people
        raise PSAEError(
            f"could not load dataset {config.source!r} split {config.split!r} "
            f"({_first_line(err)})"
        ) from None
    yield from _dataset_documents(data, config, repr(config.source))


def _dataset_documents(data: Any, config: TextConfig, name: str) -> Iterator[str]:
    column = config.text_column
    names = getattr(data, "column_names", None)
    if names is not None and column not in names:
        raise PSAEError(f"dataset {name} has no column {column!r}; available columns: "
                        f"{list(names)}")
    if names is not None and hasattr(data, "select_columns"):
        data = data.select_columns([column])
    batches: Iterable[dict[str, list]] = data.iter(batch_size=256)
    for batch in batches:
        if column not in batch:
            raise PSAEError(f"dataset {name} has no column {column!r}; available columns: "
                            f"{sorted(batch)}")
        for value in batch[column]:
            yield _as_text(value, f"dataset {name} column {column!r}")


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
