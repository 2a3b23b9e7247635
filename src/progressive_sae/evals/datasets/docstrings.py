"""Every stdlib docstring on its own, with the file, top-level package and kind it comes from.

The offline corpus (`lm.offline.corpus`) joins a file's docstrings into one document; the
labelled tasks need each docstring apart and what defined it (module, class or function).
The files walked are the corpus's (same skipped folders and files), read with `ast`, never
imported, so optional modules that fail to import still count.
"""

from __future__ import annotations

import ast
import os
import sysconfig
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from progressive_sae.lm.offline.corpus import MIN_DOC_CHARS, SKIP_DIRS, SKIP_FILES, topic_documents

KINDS = {ast.Module: "module", ast.ClassDef: "class", ast.FunctionDef: "function",
         ast.AsyncFunctionDef: "function"}
"""Which node defines a docstring, by AST node type."""


@dataclass(frozen=True)
class Docstring:
    """One docstring of the standard library."""

    file: str
    """Source file relative to the stdlib, e.g. 'asyncio/events.py' (the split unit)."""
    package: str
    """Top-level module or package, e.g. 'asyncio' or 'textwrap'."""
    kind: str
    """'module', 'class' or 'function' (methods count as functions)."""
    text: str
    """The cleaned docstring."""
    in_class: bool = False
    """A function defined directly in a class body (a method)."""


def stdlib_files(root: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of the corpus's stdlib sources, sorted. Skipped folders
    (site-packages, test suites) are pruned, not walked."""
    files = []
    for folder, dirs, names in os.walk(root):
        rel_dir = Path(folder).relative_to(root)
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith("config-")]
        for name in names:
            if (name.endswith(".py") and name not in SKIP_FILES
                    and not name.startswith("_sysconfigdata")):
                files.append(((rel_dir / name).as_posix(), Path(folder) / name))
    files.sort()
    return files


def docstrings_of_file(rel: str, source: bytes) -> list[Docstring]:
    """The docstrings of one source file (at least MIN_DOC_CHARS long), in source order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences in old sources
        tree = ast.parse(source)
    package = rel.split("/")[0].removesuffix(".py")
    methods = {id(n) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for n in c.body
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found = []
    for node in ast.walk(tree):
        kind = KINDS.get(type(node))
        if kind is None:
            continue
        doc = ast.get_docstring(node, clean=True)
        if doc and len(doc.strip()) >= MIN_DOC_CHARS:
            found.append((getattr(node, "lineno", 0), Docstring(rel, package, kind, doc.strip(),
                                                                  id(node) in methods)))
    found.sort(key=lambda t: t[0])
    return [d for _, d in found]


@lru_cache(maxsize=2)
def _files_by_package(root: str) -> dict[str, tuple[tuple[str, Path], ...]]:
    grouped: dict[str, list[tuple[str, Path]]] = {}
    for rel, path in stdlib_files(Path(root)):
        grouped.setdefault(rel.split("/")[0].removesuffix(".py"), []).append((rel, path))
    return {k: tuple(v) for k, v in grouped.items()}


@lru_cache(maxsize=256)
def _package_docstrings(package: str, root: str) -> tuple[Docstring, ...]:
    out: list[Docstring] = []
    for rel, path in _files_by_package(root).get(package, ()):
        try:
            out.extend(docstrings_of_file(rel, path.read_bytes()))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
    return tuple(out)


def available_packages(root: str | None = None) -> frozenset[str]:
    """Top-level stdlib modules and packages with source files here."""
    return frozenset(_files_by_package(str(root or sysconfig.get_paths()["stdlib"])))


def stdlib_docstrings(packages: frozenset[str] | None = None,
                      root: str | None = None) -> tuple[Docstring, ...]:
    """The docstrings of `packages` (top-level names; None = all), each text kept once (the
    first file, in path order, that has it wins). Only those packages' files are parsed,
    each package once per process."""
    base = str(root or sysconfig.get_paths()["stdlib"])
    names = sorted(_files_by_package(base) if packages is None else packages)
    docs = sorted((d for p in names for d in _package_docstrings(p, base)),
                  key=lambda d: d.file)  # stable: source order within a file is kept
    seen: set[str] = set()
    out = []
    for d in docs:
        if d.text not in seen:
            seen.add(d.text)
            out.append(d)
    return tuple(out)


@lru_cache(maxsize=1)
def reference_topics() -> tuple[tuple[str, str], ...]:
    """(topic name, text) of each pydoc topic: the language reference."""
    return tuple((d.name.removeprefix("topics/"), d.text) for d in topic_documents())
