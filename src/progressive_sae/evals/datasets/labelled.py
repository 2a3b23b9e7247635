"""Labelled texts and the tasks built from them, split by document and balanced by class.

A `LabelledText` belongs to a `group` (its source document). Splits assign whole groups,
so train and test never share a document; each group goes with its most common label, and
each label's groups are split apart (by a stable hash of their names) so that every class
keeps groups on both sides. Classes are then balanced by seeded subsampling.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from progressive_sae.errors import PSAEError


@dataclass(frozen=True)
class LabelledText:
    """A text, its class and the document it comes from."""

    text: str
    """The text (truncated to the LM's context when tokenised)."""
    label: str
    """Its class."""
    group: str
    """Source document: train and test never share one."""


@dataclass(frozen=True)
class TextTask:
    """Texts with class indices, split into train and test (binary when two classes)."""

    name: str
    """Task name, e.g. 'package:asyncio'."""
    classes: tuple[str, ...]
    """Class names; labels index into this tuple (binary: class 1 is the positive)."""
    train_texts: tuple[str, ...]
    """Training texts (probes and latent selection see only these)."""
    train_labels: np.ndarray
    """Class index of each training text."""
    test_texts: tuple[str, ...]
    """Held-out texts every score is measured on."""
    test_labels: np.ndarray
    """Class index of each test text."""
    description: str = ""
    """What the classes are."""

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "classes": list(self.classes), "description": self.description,
                "train": _counts(self.train_labels, self.classes),
                "test": _counts(self.test_labels, self.classes)}


def _counts(labels: np.ndarray, classes: Sequence[str]) -> dict[str, int]:
    return {c: int((labels == i).sum()) for i, c in enumerate(classes)}


def stable_hash(text: str, seed: int = 0) -> float:
    """A number in [0, 1) from (seed, text), identical across runs and machines."""
    digest = hashlib.sha256(f"{seed}\0{text}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def check_labels(items: Sequence[LabelledText], where: str) -> list[str]:
    """The sorted classes of `items`; at least two, else a one-line error."""
    if not items:
        raise PSAEError(f"{where}: the label set is empty; expected texts of at least 2 classes")
    classes = sorted({it.label for it in items})
    if len(classes) < 2:
        raise PSAEError(f"{where}: every text has the label {classes[0]!r}; expected at least "
                        "2 classes")
    return classes


def split_groups(items: Sequence[LabelledText], test_fraction: float, seed: int,
                 where: str) -> tuple[list[LabelledText], list[LabelledText]]:
    """Train and test items, whole groups to one side, every class on both sides."""
    if not 0 < test_fraction < 1:
        raise PSAEError(f"test_fraction={test_fraction!r}: expected a number in (0, 1)")
    classes = check_labels(items, where)
    labels_of: dict[str, Counter] = defaultdict(Counter)
    for it in items:
        labels_of[it.group][it.label] += 1
    groups_of: dict[str, list[str]] = defaultdict(list)
    for group, counts in labels_of.items():
        top = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
        groups_of[top].append(group)
    test_groups: set[str] = set()
    for label in classes:
        groups = sorted(groups_of.get(label, []), key=lambda g: (stable_hash(g, seed), g))
        if len(groups) < 2:
            continue  # checked below: the class may still reach both sides through others
        n_test = min(len(groups) - 1, max(1, round(test_fraction * len(groups))))
        test_groups.update(groups[:n_test])
    train = [it for it in items if it.group not in test_groups]
    test = [it for it in items if it.group in test_groups]
    for side, part in (("train", train), ("test", test)):
        missing = sorted(set(classes) - {it.label for it in part})
        if missing:
            raise PSAEError(f"{where}: class {missing[0]!r} has no document in the {side} split; "
                            "expected each class in at least 2 source documents")
    return train, test


def balanced(items: Sequence[LabelledText], classes: Sequence[str], per_class: int,
             rng: np.random.Generator) -> list[LabelledText]:
    """Up to `per_class` texts of each class, all classes the same size (seeded subsample)."""
    by_class = {c: [it for it in items if it.label == c] for c in classes}
    n = min(per_class, *(len(v) for v in by_class.values()))
    out: list[LabelledText] = []
    for c in classes:
        pool = by_class[c]
        out.extend(pool[i] for i in sorted(rng.choice(len(pool), n, replace=False)))
    return out


def make_task(name: str, items: Sequence[LabelledText], classes: Sequence[str] | None = None,
              train_per_class: int = 100, test_per_class: int = 50,
              test_fraction: float = 0.3, seed: int = 0, description: str = "") -> TextTask:
    """A task from labelled texts: split by group, each split balanced by class."""
    found = check_labels(items, f"task {name!r}")
    classes = tuple(classes) if classes is not None else tuple(found)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise PSAEError(f"task {name!r}: label {unknown[0]!r} is not one of {list(classes)}")
    train, test = split_groups(items, test_fraction, seed, f"task {name!r}")
    rng = np.random.default_rng(seed)
    train = balanced(train, classes, train_per_class, rng)
    test = balanced(test, classes, test_per_class, rng)
    index = {c: i for i, c in enumerate(classes)}
    return TextTask(
        name=name, classes=classes,
        train_texts=tuple(it.text for it in train),
        train_labels=np.array([index[it.label] for it in train], dtype=np.int64),
        test_texts=tuple(it.text for it in test),
        test_labels=np.array([index[it.label] for it in test], dtype=np.int64),
        description=description,
    )


def one_vs_rest(task: TextTask, positive: str, seed: int = 0) -> TextTask:
    """Binary task 'positive' vs an equal number of the other classes' texts (SAEBench)."""
    if positive not in task.classes:
        raise PSAEError(f"class {positive!r}: expected one of {list(task.classes)}")
    p = task.classes.index(positive)
    rng = np.random.default_rng([seed, p])

    def side(texts: tuple[str, ...], labels: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
        pos = np.flatnonzero(labels == p)
        neg = np.flatnonzero(labels != p)
        neg = np.sort(rng.choice(neg, min(len(pos), len(neg)), replace=False))
        keep = np.concatenate([neg, pos])
        return tuple(texts[i] for i in keep), (labels[keep] == p).astype(np.int64)

    train_texts, train_labels = side(task.train_texts, task.train_labels)
    test_texts, test_labels = side(task.test_texts, task.test_labels)
    return TextTask(f"{task.name}:{positive}", (f"not {positive}", positive), train_texts,
                    train_labels, test_texts, test_labels,
                    f"{positive} vs the other classes of {task.name}")
