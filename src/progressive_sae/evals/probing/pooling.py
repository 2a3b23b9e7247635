"""Texts' residual activations at a hook, and their SAE latents, mean-pooled per text.

The LM runs once over the distinct texts of every task; each text's token activations (BOS
and padding dropped) are kept as rows of one [tokens, d] matrix, so every SAE and every
granularity view reuses them. Latents are pooled a batch of tokens at a time from the sparse
code (scatter of the k active values), so no [tokens, latents] matrix is ever held.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from progressive_sae.errors import PSAEError
from progressive_sae.evals.common import GranularityView
from progressive_sae.lm.hooks import activations, resolve_hook
from progressive_sae.lm.model import LanguageModel
from progressive_sae.sae.base import SparseAutoencoder


@dataclass
class TextActivations:
    """Residual rows of every token of every text, and their per-text means."""

    texts: tuple[str, ...]
    """The distinct texts, in row order of `pooled`."""
    tokens: torch.Tensor
    """[total tokens, d] float32: each text's token activations (no BOS, no padding)."""
    text_of_token: torch.Tensor
    """[total tokens] int64: the text each row belongs to."""
    counts: torch.Tensor
    """[texts] float32: tokens per text (≥ 1)."""
    hook: str = ""
    """Hook point the rows were read at."""

    def __post_init__(self) -> None:
        self._index = {t: i for i, t in enumerate(self.texts)}
        self.pooled = torch.zeros(len(self.texts), self.tokens.shape[1])
        self.pooled.index_add_(0, self.text_of_token, self.tokens)
        self.pooled /= self.counts[:, None]

    @property
    def d(self) -> int:
        return int(self.tokens.shape[1])

    def rows(self, texts: Iterable[str]) -> np.ndarray:
        """Row of each text in `pooled` (every text must have been collected)."""
        try:
            return np.array([self._index[t] for t in texts], dtype=np.int64)
        except KeyError as e:
            raise PSAEError(f"text {str(e)[:60]}…: its activations were not collected") from None


def unique_texts(*groups: Iterable[str]) -> list[str]:
    """The distinct texts of all groups, first occurrence first."""
    return list(dict.fromkeys(t for g in groups for t in g))


@torch.no_grad()
def collect_activations(
    lm: LanguageModel, hook: str, texts: Sequence[str], ctx: int = 128, batch_size: int = 32,
    progress: bool = False,
) -> TextActivations:
    """Token activations at `hook` of each text cut to `ctx` tokens (BOS included if the
    tokenizer has one); the BOS position is dropped, as in SAEBench."""
    point = resolve_hook(lm, hook)
    if lm.tokenizer is None:
        raise PSAEError(f"model {lm.name!r} has no tokenizer: expected one to read texts")
    config = getattr(lm.model, "config", None)
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions",
                                                                         None)
    if ctx < 2 or (isinstance(limit, int) and ctx > limit):
        raise PSAEError(f"ctx={ctx}: expected 2 ≤ ctx ≤ {limit or 'the model context'} tokens "
                        "per text")
    texts = unique_texts(texts)
    if not texts:
        raise PSAEError("no texts given: expected at least one text to collect activations of")
    bos = getattr(lm.tokenizer, "bos_token_id", None)
    head = [int(bos)] if bos is not None else []
    encoded = lm.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    ids = [head + list(e)[: ctx - len(head)] for e in encoded]
    empty = [t for t, i in zip(texts, ids) if len(i) <= len(head)]
    if empty:
        raise PSAEError(f"text {empty[0][:40]!r}: it tokenises to nothing; expected non-empty "
                        "texts")
    order = np.argsort([len(i) for i in ids], kind="stable")  # similar lengths batch together
    rows: list[torch.Tensor | None] = [None] * len(texts)
    pad = 0
    batches = range(0, len(order), batch_size)
    for start in tqdm(batches, desc="LM activations", disable=not progress, leave=False):
        chunk = order[start:start + batch_size]
        width = max(len(ids[i]) for i in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, i in enumerate(chunk):
            input_ids[r, :len(ids[i])] = torch.tensor(ids[i])
            mask[r, :len(ids[i])] = 1
        acts = activations(lm, input_ids, point, attention_mask=mask).float().cpu()
        for r, i in enumerate(chunk):
            rows[i] = acts[r, len(head):len(ids[i])]
    tokens = torch.cat(rows)  # type: ignore[arg-type]
    counts = torch.tensor([len(r) for r in rows], dtype=torch.float32)  # type: ignore[arg-type]
    owner = torch.repeat_interleave(torch.arange(len(texts)), counts.long())
    return TextActivations(tuple(texts), tokens, owner, counts, point.name)


def check_width(saes: dict[str, SparseAutoencoder], d: int, hook: str) -> None:
    """Every SAE must read activations of width d."""
    for name, sae in saes.items():
        if sae.d_in != d:
            raise PSAEError(f"SAE {name!r} reads d_in={sae.d_in}: the hook {hook or 'point'} has "
                            f"width {d}")


@torch.no_grad()
def pooled_latents(sae: SparseAutoencoder, acts: TextActivations,
                   view: GranularityView | None = None, batch_tokens: int = 8192) -> torch.Tensor:
    """[texts, G] float32: each text's mean code over its tokens in the view (default: full)."""
    g = sae.num_latents if view is None else view.granularity
    mode = "relative" if view is None else view.mode
    out = torch.zeros(len(acts.texts), g, dtype=torch.float32)
    param = sae.W_enc
    for start in range(0, acts.tokens.shape[0], batch_tokens):
        rows = acts.tokens[start:start + batch_tokens].to(param.device, param.dtype)
        code = sae.encode(rows, g, mode)
        keep = code.indices < g  # prefix mode keeps indices ≥ G with value 0
        values = (code.values * keep).float().cpu()
        owner = acts.text_of_token[start:start + batch_tokens, None].expand_as(values)
        out.index_put_((owner.reshape(-1), code.indices.clamp_max(g - 1).cpu().reshape(-1)),
                       values.reshape(-1), accumulate=True)
    return out / acts.counts[:, None]


def view_latents(sae: SparseAutoencoder, acts: TextActivations,
                 views: Sequence[GranularityView],
                 batch_tokens: int = 8192) -> Iterable[tuple[GranularityView, torch.Tensor]]:
    """(view, pooled latents) for each view; prefix views are columns of the full code, so
    only the full dictionary and the relative views are encoded."""
    full = pooled_latents(sae, acts, None, batch_tokens)
    for view in views:
        if view.granularity == sae.num_latents:
            yield view, full
        elif view.mode == "prefix":
            yield view, full[:, :view.granularity]
        else:
            yield view, pooled_latents(sae, acts, view, batch_tokens)
