"""SCR's spuriously correlated pairs from the shipped corpus, sized as SAEBench sizes them.

Each pair crosses a topic (attribute A: two disjoint groups of stdlib modules) with where a
docstring is defined (attribute B: a method, i.e. a function in a class body, vs a
module-level function or class). SAEBench's bias_in_bios pairs cross a profession with
gender; its three probes (A, B, and the biased A = B probe) each train on the same number of
texts: the two oracle probes on all four cells, the biased one on the two agreeing cells at
twice the count. The same here: m texts per cell for the oracle probes, 2m per agreeing
cell for the biased one (4m each), the test set balanced over the four cells. Which B value
pairs with which A value in the biased set is chosen per pair so that m is largest.

Documents (source files) never straddle train and test. Counts on CPython 3.12's stdlib
(methods / module level): networking 368/238, text processing 220/211, introspection
252/270, packaging 285/294, concurrency 347/232, mail 271/195, files 243/210, GUI 621/149.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from progressive_sae.errors import PSAEError
from progressive_sae.evals.datasets.docstrings import stdlib_docstrings
from progressive_sae.evals.datasets.labelled import LabelledText, split_groups
from progressive_sae.evals.datasets.offline import MAX_CHARS, SpuriousTask, TaskSizes

SCR_GROUPS: dict[str, tuple[str, ...]] = {
    "networking": ("http", "urllib", "xmlrpc", "socket", "ssl", "ftplib", "socketserver",
                   "wsgiref", "selectors", "nntplib", "telnetlib", "ipaddress"),
    "text": ("string", "re", "difflib", "textwrap", "shlex", "codecs", "locale", "gettext",
             "tokenize", "pprint", "reprlib", "rlcompleter", "stringprep", "fnmatch", "html",
             "xml", "csv", "json", "configparser", "tomllib"),
    "introspection": ("inspect", "pydoc", "dis", "ast", "logging", "warnings", "symtable",
                      "code", "codeop", "traceback", "linecache"),
    "packaging": ("distutils", "importlib", "pkgutil", "zipimport", "ensurepip", "venv",
                  "site", "sysconfig", "modulefinder", "runpy"),
    "concurrency": ("asyncio", "multiprocessing", "threading", "concurrent", "queue", "sched",
                    "subprocess", "_threading_local"),
    "mail": ("email", "mailbox", "smtplib", "imaplib", "poplib", "mimetypes", "quopri",
             "base64"),
    "files": ("pathlib", "os", "shutil", "tarfile", "zipfile", "glob", "tempfile", "filecmp",
              "fileinput", "_pyio", "io", "gzip", "bz2", "lzma", "posixpath", "ntpath",
              "genericpath", "stat"),
    "gui": ("tkinter", "turtle", "idlelib", "turtledemo"),
}
"""Disjoint topic groups of stdlib modules (those absent from a Python are not found)."""
SCR_PAIRS: dict[str, tuple[str, str]] = {
    "networking-vs-text": ("networking", "text"),
    "introspection-vs-packaging": ("introspection", "packaging"),
    "concurrency-vs-mail": ("concurrency", "mail"),
    "files-vs-gui": ("files", "gui"),
}
"""SCR pairs: name → (topic of A = 0, topic of A = 1); B is 'module level' (0) vs 'method'."""
WHERE = ("module level", "method")
SCR_SIZES = TaskSizes(150, 50, 0.3, 0)
"""Default sizes: up to 150 oracle training texts per cell, 50 test texts per cell."""


def _cells(pair: str) -> list[LabelledText]:
    a0, a1 = SCR_PAIRS[pair]
    topic = {p: 0 for p in SCR_GROUPS[a0]} | {p: 1 for p in SCR_GROUPS[a1]}
    return [LabelledText(d.text[:MAX_CHARS], f"{topic[d.package]}|{int(d.in_class)}",
                         f"stdlib/{d.file}")
            for d in stdlib_docstrings(frozenset(topic)) if d.kind != "module"]


def _take(pool: list[LabelledText], n: int, rng: np.random.Generator) -> list[LabelledText]:
    return [pool[i] for i in sorted(rng.choice(len(pool), n, replace=False))]


def scr_task(pair: str, sizes: TaskSizes = SCR_SIZES) -> SpuriousTask:
    """One SCR pair: oracle training texts m per cell, biased 2m per agreeing cell, test
    `test_per_class` per cell (fewer where the corpus has fewer)."""
    if pair not in SCR_PAIRS:
        raise PSAEError(f"SCR pair {pair!r}: expected one of {list(SCR_PAIRS)}")
    items = _cells(pair)
    train, test = split_groups(items, sizes.test_fraction, sizes.seed, f"SCR pair {pair!r}")
    keys = [f"{a}|{b}" for a in (0, 1) for b in (0, 1)]
    pools = {k: [it for it in train if it.label == k] for k in keys}
    tests = {k: [it for it in test if it.label == k] for k in keys}
    smallest = min(len(v) for v in pools.values())
    # flip: the biased set pairs A = a with B = a ^ flip; pick the orientation with larger m.
    options = []
    for flip in (0, 1):
        agree = [f"0|{flip}", f"1|{1 - flip}"]
        m = min(sizes.train_per_class, smallest, min(len(pools[k]) for k in agree) // 2)
        options.append((m, -flip, flip))
    m, _, flip = max(options)
    t = min(sizes.test_per_class, *(len(v) for v in tests.values()))
    if m < 1 or t < 1:
        raise PSAEError(f"SCR pair {pair!r}: a cell has no text on one side of the split; "
                        "expected texts in all four cells")
    rng = np.random.default_rng(sizes.seed)
    oracle: list[tuple[LabelledText, int, int]] = []
    biased: list[tuple[LabelledText, int]] = []
    for k in keys:
        a, b = int(k[0]), int(k[2])
        chosen = _take(pools[k], 2 * m if b == a ^ flip else m, rng)
        oracle += [(it, a, b) for it in chosen[:m]]
        if b == a ^ flip:
            biased += [(it, a) for it in chosen]
    held = [(it, int(k[0]), int(k[2])) for k in keys for it in _take(tests[k], t, rng)]
    where = WHERE if not flip else WHERE[::-1]

    def b_of(b: int) -> int:  # B is recoded so that B = A on the biased set
        return b ^ flip

    def arr(values: Sequence[int]) -> np.ndarray:
        return np.array(values, dtype=np.int64)

    return SpuriousTask(
        pair, ("topic", "where"), (SCR_PAIRS[pair], where),
        tuple(it.text for it, _, _ in oracle), arr([a for _, a, _ in oracle]),
        arr([b_of(b) for _, _, b in oracle]),
        tuple(it.text for it, _, _ in held), arr([a for _, a, _ in held]),
        arr([b_of(b) for _, _, b in held]),
        tuple(it.text for it, _ in biased), arr([a for _, a in biased]))


def scr_tasks(pairs: Sequence[str] = tuple(SCR_PAIRS),
              sizes: TaskSizes = SCR_SIZES) -> list[SpuriousTask]:
    """The SCR pairs named, in order."""
    if not pairs:
        raise PSAEError("no SCR pair given: expected names such as 'networking-vs-text'")
    return [scr_task(p, sizes) for p in pairs]
