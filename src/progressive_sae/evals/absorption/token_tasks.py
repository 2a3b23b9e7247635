"""Token label sets that a small LM does encode, for the label-agnostic absorption measure:

* `word-start` — a token that starts a word (" word") vs a continuation piece ("ing" after a
  letter);
* `capitalised` — a word token whose first letter is upper case vs lower case;
* `doctest` — a token on a doctest line (one starting with `>>>`) vs any other line.

Labels come from the token texts alone; activations from running the LM over the shipped
corpus (CPython's pydoc topics), or from an activation cache's rows and token ids.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from progressive_sae.errors import PSAEError
from progressive_sae.lm.hooks import activations
from progressive_sae.lm.model import LanguageModel

TOKEN_TASKS = ("word-start", "capitalised", "doctest")
WORD_START = re.compile(r"\s[A-Za-z]")


def label_tokens(task: str, pieces: Sequence[str], starts_a_line: bool = True
                 ) -> list[str | None]:
    """The label of each token text (None = not part of the task), in context order.

    `starts_a_line`: whether the first piece begins a line (else the first line's tokens get
    no doctest label, since the start of their line is unknown).
    """
    if task not in TOKEN_TASKS:
        raise PSAEError(f"token task {task!r}: expected one of {TOKEN_TASKS}")
    labels: list[str | None] = []
    if task == "doctest":
        text = "".join(pieces)
        offset = 0
        for piece in pieces:
            content = len(piece) - len(piece.lstrip())
            at = offset + content
            offset += len(piece)
            line_start = text.rfind("\n", 0, at) + 1
            if content == len(piece) or (line_start == 0 and not starts_a_line):
                labels.append(None)
                continue
            line_end = text.find("\n", at)
            line = text[line_start:line_end if line_end >= 0 else len(text)]
            labels.append("doctest" if line.lstrip().startswith(">>>") else "other line")
        return labels
    previous = ""
    for piece in pieces:
        letter = piece[:1].isascii() and piece[:1].isalpha()
        starts_word = bool(WORD_START.match(piece)) or (letter and not previous[-1:].isalnum())
        label = None
        if task == "word-start":
            if starts_word:
                label = "word start"
            elif letter and previous[-1:].isalpha():
                label = "continuation"
        elif starts_word:
            label = "capitalised" if piece.lstrip()[0].isupper() else "lower case"
        labels.append(label)
        previous = piece
    return labels


def _choose(candidates: dict[str, list], rows_per_class: int, seed: int) -> list[tuple]:
    """Up to `rows_per_class` candidates of each label (seeded), as (label, item) pairs."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in sorted(candidates):
        items = candidates[label]
        take = rng.choice(len(items), min(rows_per_class, len(items)), replace=False)
        chosen.extend((label, items[i]) for i in sorted(take))
    return chosen


@torch.no_grad()
def corpus_token_dataset(
    lm: LanguageModel, hook: str, task: str, rows_per_class: int = 256, ctx: int = 64,
    seed: int = 0, batch_size: int = 32,
) -> tuple[torch.Tensor, list[str], dict]:
    """(activations, labels, details) of tokens of the shipped corpus's pydoc topics, each
    read with up to `ctx` tokens of context; only the windows holding a chosen token run
    through the LM, each cut after its last chosen token (causal: the rest cannot matter)."""
    from progressive_sae.lm.offline.corpus import topic_documents

    if lm.tokenizer is None:
        raise PSAEError(f"model {lm.name!r} has no tokenizer: token tasks need one")
    tok = lm.tokenizer
    bos = getattr(tok, "bos_token_id", None)
    head = [bos] if bos is not None else []
    windows: list[list[int]] = []
    candidates: dict[str, list[tuple[int, int]]] = {}
    for doc in topic_documents():
        encoded = tok(doc.text, add_special_tokens=False,  # type: ignore[operator]
                      return_offsets_mapping=True, verbose=False)
        ids, spans = encoded["input_ids"], encoded["offset_mapping"]
        labels = label_tokens(task, [doc.text[a:b] for a, b in spans])
        step = ctx - len(head)
        for start in range(0, len(ids), step):
            for j, label in enumerate(labels[start:start + step]):
                if label is not None:
                    candidates.setdefault(label, []).append((len(windows), j + len(head)))
            windows.append(head + ids[start:start + step])
    chosen = _choose(candidates, rows_per_class, seed)
    last: dict[int, int] = {}
    for _, (w, p) in chosen:
        last[w] = max(last.get(w, 0), p)
    needed = sorted(last, key=lambda w: last[w])  # similar lengths batch together
    where = {w: i for i, w in enumerate(needed)}
    states: list[torch.Tensor] = []
    for start in range(0, len(needed), batch_size):
        batch = [windows[w][:last[w] + 1] for w in needed[start:start + batch_size]]
        width = max(map(len, batch))
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        states.extend(activations(lm, ids, hook, attention_mask=mask).float().cpu())
    x = torch.stack([states[where[w]][p] for _, (w, p) in chosen]) if chosen else torch.empty(0)
    details = {"source": "pydoc topics (shipped corpus)", "windows_run": len(needed),
               "tokens_run": sum(last[w] + 1 for w in needed), "ctx": ctx,
               "candidates": {k: len(v) for k, v in sorted(candidates.items())}}
    return x, [label for label, _ in chosen], details


def cache_token_dataset(
    cache: str | Path, tokenizer: object, task: str, rows_per_class: int = 256,
    scan_rows: int = 262_144, seed: int = 0,
) -> tuple[torch.Tensor, list[str], dict]:
    """(activations, labels, details) from an activation cache (its folder, or a YAML config
    naming it): its first `scan_rows` rows in disk order, labelled from their token ids
    (decoded with `tokenizer`)."""
    from progressive_sae.config_files import data_source

    source = data_source(cache, text_order=True)
    if not hasattr(source, "token_table"):
        raise PSAEError(f"--data {cache}: token tasks need token ids: expected an activation "
                        "cache written by `psae extract`")
    table = source.token_table(0, min(len(source), scan_rows))
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    unique = np.unique(table[:, 2])
    texts = {int(i): tokenizer.convert_tokens_to_string(  # type: ignore[attr-defined]
        [tokenizer.convert_ids_to_tokens(int(i))]) for i in unique}  # type: ignore[attr-defined]
    candidates: dict[str, list[int]] = {}
    bounds = np.flatnonzero(np.diff(table[:, 0]) != 0) + 1
    for rows in np.split(np.arange(table.shape[0]), bounds):
        tokens = table[rows, 2]
        real = [r for r, t in zip(rows, tokens) if int(t) not in special]
        pieces = [texts[int(table[r, 2])] for r in real]
        for r, label in zip(real, label_tokens(task, pieces, starts_a_line=False)):
            if label is not None:
                candidates.setdefault(label, []).append(int(r))
    chosen = _choose(candidates, rows_per_class, seed)
    rows = np.array([r for _, r in chosen], dtype=np.int64)
    x = source.read_physical(rows)[0] if rows.size else torch.empty(0)
    details = {"source": f"activation cache {source.dir}", "hook": source.hook,
               "rows_scanned": int(table.shape[0]),
               "candidates": {k: len(v) for k, v in sorted(candidates.items())}}
    return x, [label for label, _ in chosen], details
