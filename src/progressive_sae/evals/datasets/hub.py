"""SAEBench's labelled datasets (bias_in_bios, Amazon reviews, ag_news, Europarl, github-code)
through `datasets`: ready configs in configs/evals-saebench.yaml; needs internet (or a local
copy: a `save_to_disk` folder or a .jsonl/.parquet file).

Each chosen class becomes a one-vs-rest binary task (a dataset with two classes, one task),
as in SAEBench's sparse probing. With a test split, train and test come from their own
splits; without one, rows are split by `group_column` (each row its own document if unset).
Rows are streamed and reading stops once every class has enough texts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from progressive_sae.errors import PSAEError, check_settings, first_line
from progressive_sae.evals.datasets.labelled import (
    LabelledText,
    TextTask,
    balanced,
    check_labels,
    one_vs_rest,
    split_groups,
)


@dataclass
class HubTaskConfig:
    """One labelled text dataset and the classes to probe."""

    name: str
    """Short name, prefix of the task names ('ag_news' → 'ag_news:1')."""
    dataset: str
    """Hub name (e.g. 'fancyzhx/ag_news'), a `save_to_disk` folder, or a .jsonl/.parquet file."""
    text_column: str
    """Column holding the text."""
    label_column: str
    """Column holding the class."""
    classes: list[str] | None = None
    """Chosen classes, as the label values written as strings (None: every class found)."""
    dataset_config: str | None = None
    """Dataset configuration (second argument of `load_dataset`)."""
    train_split: str = "train"
    """Split the probes train on."""
    test_split: str | None = "test"
    """Split they are tested on; None: split `train_split` by document."""
    group_column: str | None = None
    """Column naming each row's source document (only used without a test split)."""
    train_per_class: int = 100
    """Training texts per class."""
    test_per_class: int = 50
    """Test texts per class."""
    test_fraction: float = 0.2
    """Share of documents held out when there is no test split."""
    max_chars: int = 2000
    """Texts are cut to this many characters before tokenising."""
    seed: int = 0
    """Seed of the subsampling and of the document split."""

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "dataset config") -> HubTaskConfig:
        check_settings(data, [f.name for f in dataclasses.fields(cls)], where,
                       required=("name", "dataset", "text_column", "label_column"))
        data = dict(data)
        if data.get("classes") is not None:
            data["classes"] = [str(c) for c in data["classes"]]
        return cls(**data)


def _local_rows(path: Path, split: str) -> Iterator[dict[str, Any]]:
    import datasets

    if path.is_dir():
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise PSAEError(f"dataset {str(path)!r} has no split {split!r}; it has "
                                f"{sorted(loaded)}")
            loaded = loaded[split]
        yield from loaded
        return
    builder = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(path.suffix)
    if builder is None:
        raise PSAEError(f"dataset file {str(path)!r}: expected .jsonl, .json or .parquet")
    yield from datasets.load_dataset(builder, data_files=str(path), split="train")


def iter_rows(config: HubTaskConfig, split: str) -> Iterator[dict[str, Any]]:
    """Rows of one split, streamed from the hub or read from a local copy."""
    path = Path(config.dataset).expanduser()
    if path.exists():
        yield from _local_rows(path, split)
        return
    import datasets

    try:
        stream = datasets.load_dataset(config.dataset, config.dataset_config, split=split,
                                       streaming=True)
    except Exception as e:  # network, unknown name, gated dataset: one line for people
        raise PSAEError(f"dataset {config.dataset!r} split {split!r}: cannot load it "
                        f"({first_line(e)})") from e
    yield from stream


def read_items(config: HubTaskConfig, split: str, per_class: int,
               prefix: str) -> list[LabelledText]:
    """Labelled texts of the chosen classes from one split, up to 4·per_class of each (enough
    to balance after the document split), stopping early once every class has them."""
    wanted = set(config.classes) if config.classes is not None else None
    enough = 4 * per_class
    counts: dict[str, int] = {}
    items = []
    for i, row in enumerate(iter_rows(config, split)):
        for column in (config.text_column, config.label_column):
            if column not in row:
                raise PSAEError(f"dataset {config.dataset!r} has no column {column!r}; it has "
                                f"{sorted(row)}")
        label = str(row[config.label_column])  # ratings 1.0/5.0 keep their '.0'
        if (wanted is not None and label not in wanted) or counts.get(label, 0) >= enough:
            continue
        text = str(row[config.text_column] or "")[: config.max_chars]
        if not text.strip():
            continue
        group = (f"{prefix}/{row[config.group_column]}" if config.group_column
                 else f"{prefix}/{i}")
        items.append(LabelledText(text, label, group))
        counts[label] = counts.get(label, 0) + 1
        if wanted is not None and all(counts.get(c, 0) >= enough for c in wanted):
            break
    return items


def tasks_from_splits(name: str, train: list[LabelledText], test: list[LabelledText],
                      classes: list[str], train_per_class: int, test_per_class: int,
                      seed: int, description: str) -> list[TextTask]:
    """Balanced binary tasks from split texts: one, or one-vs-rest past two classes."""
    for side, part in (("train", train), ("test", test)):
        missing = sorted(set(classes) - {it.label for it in part})
        if missing:
            raise PSAEError(f"{name!r}: class {missing[0]!r} has no text in the {side} split; "
                            f"found {sorted({it.label for it in part})}")
    rng = np.random.default_rng(seed)
    train = balanced(train, classes, train_per_class, rng)
    test = balanced(test, classes, test_per_class, rng)
    index = {c: i for i, c in enumerate(classes)}
    multi = TextTask(name, tuple(classes), tuple(t.text for t in train),
                     np.array([index[t.label] for t in train], dtype=np.int64),
                     tuple(t.text for t in test),
                     np.array([index[t.label] for t in test], dtype=np.int64), description)
    if len(classes) == 2:
        return [multi]
    return [one_vs_rest(multi, c, seed) for c in classes]


def hub_tasks(config: HubTaskConfig) -> list[TextTask]:
    """The dataset's binary tasks: one per chosen class (one-vs-rest), or one for 2 classes."""
    where = f"dataset {config.name!r}"
    if config.test_split is None:
        items = read_items(config, config.train_split, config.train_per_class
                           + config.test_per_class, "train")
        train, test = split_groups(items, config.test_fraction, config.seed, where)
    else:
        train = read_items(config, config.train_split, config.train_per_class, "train")
        test = read_items(config, config.test_split, config.test_per_class, "test")
    found = check_labels(train + test, where)
    classes = list(config.classes) if config.classes is not None else found
    return tasks_from_splits(config.name, train, test, classes, config.train_per_class,
                             config.test_per_class, config.seed,
                             f"{config.label_column} of {config.dataset}")


def load_hub_configs(path: str | Path) -> list[HubTaskConfig]:
    """The `datasets:` list of a YAML file such as configs/evals-saebench.yaml."""
    from progressive_sae.config_files import load_yaml

    data = load_yaml(path)
    entries = data.get("datasets") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise PSAEError(f"{path}: expected a non-empty 'datasets:' list of dataset configs")
    return [HubTaskConfig.from_dict(e, f"datasets[{i}] of {path}") for i, e in enumerate(entries)]


def file_tasks(path: str | Path, train_per_class: int = 100, test_per_class: int = 50,
               test_fraction: float = 0.3, seed: int = 0) -> list[TextTask]:
    """Tasks from a .jsonl file of {"text", "label"[, "group"]} rows (group: the source
    document; each row its own when absent), split by group; one-vs-rest past 2 classes."""
    import json

    path = Path(path)
    if not path.is_file():
        raise PSAEError(f"task file {str(path)!r} does not exist")
    items = []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise PSAEError(f"{path}:{i + 1}: not a JSON object") from None
        if not isinstance(row, dict) or "text" not in row or "label" not in row:
            raise PSAEError(f"{path}:{i + 1}: expected an object with 'text' and 'label'")
        items.append(LabelledText(str(row["text"]), str(row["label"]),
                                  str(row.get("group", f"row{i}"))))
    classes = check_labels(items, f"task file {str(path)!r}")
    train, test = split_groups(items, test_fraction, seed, f"task file {str(path)!r}")
    return tasks_from_splits(path.stem, train, test, classes, train_per_class, test_per_class,
                             seed, str(path))
