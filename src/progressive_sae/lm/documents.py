"""Reading documents: from a Hugging Face dataset or from local text files.

* a Hugging Face dataset: a hub name (`load_dataset(name, split=…, streaming=True)`), a
  builder such as `"json"` with `data_files`, or a folder written by `save_to_disk`;
* local files: `.txt` (by default one document per blank-line-separated block; with
  `txt_split="file"` one document per file), `.jsonl` (one JSON object per line, the text in
  `text_column`) and `.parquet` (the `text_column` column, read with pyarrow); a folder is
  read as all such files below it, sorted by their relative path.

Every failure (missing file, bad JSON line, absent column, unreachable dataset) is one
PSAEError line that names the file, line or column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from progressive_sae.errors import PSAEError, first_line

if TYPE_CHECKING:
    from progressive_sae.lm.text_config import TextConfig

FILE_TYPES = (".txt", ".jsonl", ".parquet")
SAVED_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def raw_documents(config: TextConfig) -> Iterator[str]:
    """Every document of `config.source` in a fixed order (empty ones included)."""
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
        raise PSAEError(f"{path} is not a readable parquet file ({first_line(err)})") from None
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

def _saved_dataset_documents(path: Path, config: TextConfig) -> Iterator[str]:
    import datasets

    try:
        data = datasets.load_from_disk(str(path))
    except Exception as err:
        raise PSAEError(f"{path}: could not load the saved dataset ({first_line(err)})") from None
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
            f"({first_line(err)})"
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


def _looks_like_path(source: str) -> bool:
    return (
        source.startswith(("/", "./", "../", "~"))
        or Path(source).suffix in FILE_TYPES + (".json", ".csv", ".gz")
    )
