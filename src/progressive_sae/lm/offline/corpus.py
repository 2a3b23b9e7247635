"""The offline text corpus: what ships with CPython, read without importing it.

Two sources, each split into documents:

* ``pydoc_data.topics`` — the language reference behind ``help()``, one document per topic;
* the standard library's docstrings, parsed with :mod:`ast` from the ``.py`` files under
  ``sysconfig.get_paths()["stdlib"]`` (test suites, IDLE, demos and vendored code skipped),
  one document per source file: its module, class and function docstrings in source order.

Nothing is imported from the walked modules, so the corpus does not depend on which
optional modules (tkinter, curses, …) happen to import. Documents are held out by a hash of
their name, so the split of one document never depends on the others.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import sys
import sysconfig
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SKIP_DIRS = frozenset({
    "test", "tests", "idle_test", "idlelib", "turtledemo", "site-packages", "dist-packages",
    "lib2to3", "ensurepip", "encodings", "__pycache__", "__phello__", "lib-dynload", "pydoc_data",
    "_vendor", "config-3.10-x86_64-linux-gnu",
})
"""Directory names under the stdlib that are not library documentation."""
SKIP_FILES = frozenset({"this.py", "antigravity.py", "__hello__.py"})
"""Files whose docstrings (or lack of them) are not documentation."""
MIN_DOC_CHARS = 40
"""Documents shorter than this many characters are dropped."""


@dataclass(frozen=True)
class Document:
    """One unit of the corpus and of the held-out split."""

    name: str
    """Stable identifier: 'topics/<topic>' or 'stdlib/<path relative to the stdlib>'."""
    text: str
    """The document's text."""


@dataclass(frozen=True)
class Corpus:
    """Training and held-out documents, both in a fixed order."""

    train: tuple[Document, ...]
    """Documents to train on."""
    heldout: tuple[Document, ...]
    """Documents kept out of tokenizer and LM training, for held-out CE."""
    heldout_fraction: float
    """Share of documents (by name hash) held out."""

    @property
    def train_chars(self) -> int:
        return sum(len(d.text) for d in self.train)

    @property
    def heldout_chars(self) -> int:
        return sum(len(d.text) for d in self.heldout)

    def fingerprint(self) -> str:
        """SHA-256 over names and texts of both splits: equal fingerprints, equal corpora."""
        h = hashlib.sha256()
        for split, docs in (("train", self.train), ("heldout", self.heldout)):
            for d in docs:
                for part in (split, d.name, d.text):
                    h.update(part.encode("utf-8", "surrogatepass"))
                    h.update(b"\0")
        return h.hexdigest()

    def summary(self) -> dict:
        return {
            "train_documents": len(self.train), "heldout_documents": len(self.heldout),
            "train_chars": self.train_chars, "heldout_chars": self.heldout_chars,
            "heldout_fraction": self.heldout_fraction, "fingerprint": self.fingerprint(),
            "python": sys.version.split()[0],
        }


def _clean(doc: str) -> str:
    return inspect.cleandoc(doc).strip()


_BLOCKS = (ast.stmt, ast.excepthandler, ast.match_case)


def _scopes(node: ast.AST):
    """`node` and every statement below it, through statement lists only: a definition (the
    only node with a docstring) is always a statement, so expressions — most of a tree, and
    what made `ast.walk` slow here — are never visited."""
    yield node
    for field in node._fields:
        value = getattr(node, field, None)
        if isinstance(value, list):
            for item in value:
                if isinstance(item, _BLOCKS):
                    yield from _scopes(item)


def docstrings_of_source(source: str | bytes) -> list[str]:
    """Module, class and function docstrings of one Python source, in source order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences in old sources
        tree = ast.parse(source)
    found: list[tuple[int, int, str]] = []
    for node in _scopes(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc and doc.strip():
                line = getattr(node, "lineno", 0)
                found.append((line, getattr(node, "col_offset", 0), _clean(doc)))
    found.sort(key=lambda t: (t[0], t[1]))
    return [d for _, _, d in found]


def stdlib_documents(root: Path | None = None) -> list[Document]:
    """One document per stdlib source file with docstrings, sorted by relative path."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    files = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if any(p in SKIP_DIRS or p.startswith("config-") for p in rel.parts[:-1]):
            continue
        if rel.name in SKIP_FILES or rel.name.startswith("_sysconfigdata"):
            continue
        files.append((rel.as_posix(), path))
    files.sort()
    docs = []
    for rel, path in files:
        try:
            parts = docstrings_of_source(path.read_bytes())  # bytes: BOM and coding cookies
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        text = "\n\n".join(parts)
        if len(text) >= MIN_DOC_CHARS:
            docs.append(Document(f"stdlib/{rel}", text))
    return docs


def topic_documents() -> list[Document]:
    """One document per pydoc topic, sorted by topic name (the module is plain data)."""
    from pydoc_data.topics import topics

    return [Document(f"topics/{k}", topics[k].strip()) for k in sorted(topics)
            if len(topics[k].strip()) >= MIN_DOC_CHARS]


def is_heldout(name: str, fraction: float) -> bool:
    """Whether the document `name` is held out: a hash of the name alone decides."""
    h = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return h / 2**64 < fraction


@lru_cache(maxsize=4)
def build_corpus(heldout_fraction: float = 0.05, stdlib_root: str | None = None) -> Corpus:
    """Topics then stdlib docstrings, split by document; deterministic for a given CPython."""
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    docs = topic_documents() + stdlib_documents(Path(stdlib_root) if stdlib_root else None)
    train = tuple(d for d in docs if not is_heldout(d.name, heldout_fraction))
    heldout = tuple(d for d in docs if is_heldout(d.name, heldout_fraction))
    return Corpus(train=train, heldout=heldout, heldout_fraction=heldout_fraction)
