"""Labelled tasks from the shipped corpus (CPython's docstrings and language reference).

* `package:<name>` — docstrings of one stdlib package against those of the other packages of
  the set (one-vs-rest, as SAEBench does over a dataset's chosen classes);
* `kind` — function against class docstrings;
* `source` — language-reference topics (pydoc) against docstrings;
* the spurious pairs for SCR are built in `spurious.py` (topic × method vs module level).

The split unit is the source file (a pydoc topic for the reference), so train and test
never share a document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from progressive_sae.errors import PSAEError
from progressive_sae.evals.datasets.docstrings import (
    Docstring,
    available_packages,
    reference_topics,
    stdlib_docstrings,
)
from progressive_sae.evals.datasets.labelled import LabelledText, TextTask, make_task, one_vs_rest

PACKAGES = ("asyncio", "email", "importlib", "logging", "multiprocessing")
"""Default package classes: present in every CPython 3.10+ and not split off by distributions
(Debian ships tkinter apart, 3.12 removed distutils). Any other stdlib package may be named."""
NETWORKING = ("asyncio", "http", "urllib", "xmlrpc", "socket", "ssl", "smtplib", "ftplib",
              "imaplib", "poplib", "socketserver", "wsgiref", "selectors", "nntplib",
              "telnetlib", "ipaddress")
"""Networking modules (those absent from a given Python are simply not found)."""
TEXT_PROCESSING = ("string", "re", "difflib", "textwrap", "shlex", "codecs", "locale", "gettext",
                   "tokenize", "pprint", "reprlib", "rlcompleter", "stringprep", "fnmatch",
                   "html", "xml", "csv", "json", "configparser", "tomllib")
"""Text-processing, markup and text-format modules."""
TASK_KINDS = ("package:<name>", "kind", "source")
MAX_CHARS = 2000
"""Texts are cut to this many characters before tokenising (the context cuts them anyway)."""


@dataclass(frozen=True)
class TaskSizes:
    """How many texts each task keeps per class and split, and how it splits documents."""

    train_per_class: int = 100
    """Training texts per class (fewer when the corpus has fewer)."""
    test_per_class: int = 50
    """Test texts per class."""
    test_fraction: float = 0.3
    """Share of each class's source documents held out for testing."""
    seed: int = 0
    """Seed of the document split and the subsampling."""


def _item(d: Docstring, label: str) -> LabelledText:
    return LabelledText(d.text[:MAX_CHARS], label, f"stdlib/{d.file}")


def package_items(packages: Sequence[str]) -> list[LabelledText]:
    """Docstrings of each package (module, class and function), labelled by the package."""
    present = available_packages()
    for p in packages:
        if p not in present:
            raise PSAEError(f"package {p!r}: no docstrings of it in this Python's stdlib; "
                            f"expected e.g. one of {list(PACKAGES)}")
    return [_item(d, d.package) for d in stdlib_docstrings(frozenset(packages))]


def package_task(packages: Sequence[str] = PACKAGES, sizes: TaskSizes = TaskSizes()) -> TextTask:
    """One class per package (the TPP classes, and the pool of the one-vs-rest tasks)."""
    if len(set(packages)) < 2:
        raise PSAEError(f"packages {list(packages)}: expected at least 2 distinct packages")
    return make_task("package", package_items(packages), tuple(packages), sizes.train_per_class,
                     sizes.test_per_class, sizes.test_fraction, sizes.seed,
                     "the stdlib package a docstring comes from")


def kind_task(packages: Sequence[str] = PACKAGES, sizes: TaskSizes = TaskSizes()) -> TextTask:
    """Function vs class docstrings of the package set."""
    wanted = set(packages)
    items = [_item(d, d.kind) for d in stdlib_docstrings(frozenset(wanted))
             if d.kind != "module"]
    return make_task("kind", items, ("function", "class"), sizes.train_per_class,
                     sizes.test_per_class, sizes.test_fraction, sizes.seed,
                     "class (1) vs function (0) docstrings")


def source_task(packages: Sequence[str] = PACKAGES, sizes: TaskSizes = TaskSizes()) -> TextTask:
    """Language-reference topics vs docstrings of the package set."""
    items = [LabelledText(text[:MAX_CHARS], "reference", f"topics/{name}")
             for name, text in reference_topics()]
    items += [LabelledText(it.text, "docstring", it.group) for it in package_items(packages)]
    return make_task("source", items, ("docstring", "reference"), sizes.train_per_class,
                     sizes.test_per_class, sizes.test_fraction, sizes.seed,
                     "language reference (1) vs docstrings (0)")


def default_task_names(packages: Sequence[str] = PACKAGES) -> list[str]:
    return [f"package:{p}" for p in packages] + ["kind", "source"]


def offline_tasks(names: Sequence[str] | None = None, packages: Sequence[str] = PACKAGES,
                  sizes: TaskSizes = TaskSizes()) -> list[TextTask]:
    """The binary tasks named (default: every package, kind and source), in that order."""
    names = list(names) if names is not None else default_task_names(packages)
    if not names:
        raise PSAEError("no task given: expected task names such as 'package:asyncio', 'kind'")
    for name in names:
        if name not in ("kind", "source") and not (name.startswith("package:")
                                                   and len(name) > len("package:")):
            raise PSAEError(f"task {name!r}: expected one of {list(TASK_KINDS)}")
    named = [n.removeprefix("package:") for n in names if n.startswith("package:")]
    pool = list(dict.fromkeys(list(packages) + named))
    tasks = []
    multi = package_task(pool, sizes) if named else None
    for name in names:
        if name == "kind":
            tasks.append(kind_task(packages, sizes))
        elif name == "source":
            tasks.append(source_task(packages, sizes))
        else:
            assert multi is not None
            tasks.append(one_vs_rest(multi, name.removeprefix("package:"), sizes.seed))
    return tasks


@dataclass(frozen=True)
class SpuriousTask:
    """Texts with two binary attributes, for SCR: train and test balanced over the 4 cells."""

    name: str
    """Task name."""
    attributes: tuple[str, str]
    """Names of attribute A and attribute B."""
    values: tuple[tuple[str, str], tuple[str, str]]
    """(value 0, value 1) of A and of B."""
    train_texts: tuple[str, ...]
    """Training texts, every (A, B) cell equally often."""
    train_a: np.ndarray
    """A of each training text (0/1)."""
    train_b: np.ndarray
    """B of each training text (0/1)."""
    test_texts: tuple[str, ...]
    """Test texts, every cell equally often."""
    test_a: np.ndarray
    """A of each test text."""
    test_b: np.ndarray
    """B of each test text."""
    biased_texts: tuple[str, ...] = ()
    """Training texts of the biased probe (A = B cells only); empty: the agreeing
    training texts."""
    biased_a: np.ndarray | None = None
    """A (= B) of each biased training text."""

    def biased(self) -> tuple[tuple[str, ...], np.ndarray]:
        """(texts, A labels) the biased probe trains on."""
        if self.biased_texts:
            assert self.biased_a is not None
            return self.biased_texts, self.biased_a
        agree = self.train_a == self.train_b
        return (tuple(t for t, k in zip(self.train_texts, agree) if k),
                self.train_a[agree])

    def summary(self) -> dict:
        cells = {f"{self.values[0][a]}|{self.values[1][b]}": int(
            ((self.train_a == a) & (self.train_b == b)).sum()) for a in (0, 1) for b in (0, 1)}
        return {"name": self.name, "attributes": list(self.attributes),
                "values": [list(v) for v in self.values], "train_cells": cells,
                "biased_train_texts": len(self.biased()[0]),
                "test_texts": len(self.test_texts)}
