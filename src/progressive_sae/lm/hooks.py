"""Hook points by readable name: read a block's residual output, or splice a replacement in.

`layers.L` (0-based) is the residual stream leaving decoder block L — what
`output_hidden_states` reports as `hidden_states[L + 1]`. For the LAST block, transformers
(5.x) puts the output of the final norm in `hidden_states[-1]` instead (GPT-2 `ln_f`,
GPT-NeoX `final_layer_norm`, Llama/Gemma-2 `model.norm`); `layers.<last>` here is always the
raw block output, before the final norm, as in TransformerLens' `hook_resid_post`.
Aliases accepted: `blocks.L.hook_resid_post` (SAELens/TransformerLens) and the module path
of the block, e.g. `transformer.h.L` or `model.layers.L`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from progressive_sae.errors import PSAEError
from progressive_sae.lm.model import LanguageModel
from progressive_sae.lm.replay import batch_key, blocks_replayed, capture_hook

Replacement = Callable[[torch.Tensor], torch.Tensor]
"""Maps a block's output [B, T, d] to what the rest of the model sees instead."""

LOGITS_CHUNK_BYTES = 1 << 30
"""Rows of logits are cast to fp32 for the cross-entropy at most this many bytes at a time."""


@dataclass(frozen=True)
class HookPoint:
    """The residual stream leaving decoder block `layer` (0-based)."""

    layer: int

    @property
    def name(self) -> str:
        return f"layers.{self.layer}"


def resolve_hook(lm: LanguageModel, hook: str | HookPoint) -> HookPoint:
    """The hook point that `hook` names, checked against this model's blocks."""
    n = lm.num_blocks
    if isinstance(hook, HookPoint):
        layer, name = hook.layer, hook.name
    else:
        name = str(hook)
        layer = _parse_layer(name, lm.blocks_path)
        if layer is None:
            raise PSAEError(
                f"hook {name!r}: expected 'layers.L' (or 'blocks.L.hook_resid_post') "
                f"with L in 0..{n - 1}"
            )
    if not 0 <= layer < n:
        raise PSAEError(f"{name}: this model has {n} blocks (layers.0 … layers.{n - 1})")
    return HookPoint(layer)


def _parse_layer(name: str, blocks_path: str) -> int | None:
    forms = (
        r"layers\.(-?\d+)",
        r"blocks\.(-?\d+)\.hook_resid_post",
        re.escape(blocks_path) + r"\.(-?\d+)",
    )
    for form in forms:
        m = re.fullmatch(form, name.strip())
        if m:
            return int(m.group(1))
    return None


class _StopForward(Exception):
    """Raised by a hook to end the forward pass once the wanted block has run."""


def _block_output(output: object) -> torch.Tensor:
    """Blocks return a tensor (transformers 5) or a tuple whose first entry is the stream."""
    return output[0] if isinstance(output, tuple) else output


def _prepare(
    lm: LanguageModel, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """Token ids [B, T] on the model's device (a 1-D tensor is one sequence), checked; the
    mask likewise; forward kwargs (positions counted from each row's first real token)."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype not in (
        torch.int64, torch.int32
    ):
        raise PSAEError(f"input_ids of type {type(input_ids).__name__}: expected an integer tensor")
    if input_ids.ndim == 1:
        input_ids = input_ids[None]
    if input_ids.ndim != 2 or input_ids.shape[1] == 0:
        raise PSAEError(f"input_ids of shape {tuple(input_ids.shape)}: expected [batch, tokens]")
    lo, hi = int(input_ids.min()), int(input_ids.max())
    if lo < 0 or hi >= lm.vocab_size:
        bad = lo if lo < 0 else hi
        raise PSAEError(f"token id {bad}: expected ids in 0..{lm.vocab_size - 1}")
    device = lm.device
    kwargs: dict = {"use_cache": False}
    input_ids = input_ids.to(device=device, dtype=torch.long)
    if attention_mask is not None:
        if attention_mask.ndim == 1:
            attention_mask = attention_mask[None]
        if attention_mask.shape != input_ids.shape:
            raise PSAEError(
                f"attention_mask of shape {tuple(attention_mask.shape)}: expected the shape "
                f"of input_ids {tuple(input_ids.shape)}"
            )
        attention_mask = attention_mask.to(device=device, dtype=torch.long)
        kwargs["attention_mask"] = attention_mask
        kwargs["position_ids"] = (attention_mask.cumsum(1) - 1).clamp(min=0)
    return input_ids, attention_mask, kwargs


@torch.no_grad()
def activations(
    lm: LanguageModel, input_ids: torch.Tensor, hook: str | HookPoint,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The residual stream leaving block L, [B, T, d] in the model's dtype.

    Only blocks 0..L run: the forward pass stops right after block L. Positions where
    `attention_mask` is 0 hold meaningless values; drop them before use.
    """
    return activations_at(lm, input_ids, [hook], attention_mask)[0]


@torch.no_grad()
def activations_at(
    lm: LanguageModel, input_ids: torch.Tensor, hooks: list[str] | list[HookPoint],
    attention_mask: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """The residual streams at several hook points from one forward pass that stops after
    the deepest of them: one [B, T, d] tensor per hook, in the order given."""
    points = [resolve_hook(lm, hook) for hook in hooks]
    if not points:
        raise PSAEError("no hook points given: expected at least one, e.g. layers.2")
    deepest = max(p.layer for p in points)
    input_ids, _, kwargs = _prepare(lm, input_ids, attention_mask)
    captured: dict[int, torch.Tensor] = {}

    def keep(layer: int) -> Callable[[nn.Module, object, object], None]:
        def hook(module: nn.Module, args: object, output: object) -> None:
            captured[layer] = _block_output(output)
            if layer == deepest:
                raise _StopForward
        return hook

    handles = [lm.blocks[layer].register_forward_hook(keep(layer))
               for layer in sorted({p.layer for p in points})]
    try:
        lm.model(input_ids=input_ids, **kwargs)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    if deepest not in captured:
        raise PSAEError(f"layers.{deepest}: block {deepest} did not run in the forward pass")
    return [captured[p.layer] for p in points]


@dataclass(frozen=True)
class CrossEntropyResult:
    """Next-token cross-entropy summed over `count` scored predictions (nats)."""

    total: float
    count: int

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")

    def __add__(self, other: CrossEntropyResult) -> CrossEntropyResult:
        return CrossEntropyResult(self.total + other.total, self.count + other.count)


@torch.no_grad()
def spliced_cross_entropy(
    lm: LanguageModel, input_ids: torch.Tensor, hook: str | HookPoint,
    replace: Replacement | None, exclude_bos: bool,
    attention_mask: torch.Tensor | None = None,
) -> CrossEntropyResult:
    """Next-token cross-entropy with block L's output replaced by `replace(output)`.

    The first pass over a batch of tokens keeps block L's clean output; later passes over the
    same tokens at the same hook replay it and run only the blocks after L (lm/replay.py).

    Scores the predictions made at positions 0..T-2 of tokens 1..T-1 (both real tokens when
    a mask is given). `replace=None` is the clean model. With `exclude_bos`, each row's first
    real position (the BOS) is neither replaced nor scored: its prediction is dropped and the
    original activation is kept there, as is usual in SAE evaluations (BOS activations are
    outliers that SAEs reconstruct badly and that every later position attends to).
    """
    point = resolve_hook(lm, hook)
    input_ids, mask, kwargs = _prepare(lm, input_ids, attention_mask)
    B, T = input_ids.shape
    first = mask.argmax(1) if mask is not None else input_ids.new_zeros(B)
    keep = torch.arange(T, device=input_ids.device)[None, :] == first[:, None]  # [B, T]

    def splice(module: nn.Module, args: object, output: object) -> object:
        x = _block_output(output)
        new = replace(x)
        if not isinstance(new, torch.Tensor) or new.shape != x.shape:
            shape = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
            raise PSAEError(
                f"{point.name}: the replacement gave {shape}, expected {tuple(x.shape)}"
            )
        new = new.to(dtype=x.dtype, device=x.device)
        if exclude_bos:
            new = torch.where(keep[..., None], x, new)
        return (new, *output[1:]) if isinstance(output, tuple) else new

    key = batch_key(point.layer, input_ids, mask)
    cached = lm.block_cache.get(key)
    captured: list = []
    with contextlib.ExitStack() as stack:
        if cached is None:  # a full pass, keeping block L's clean output for the next ones
            target = lm.blocks[point.layer]
            stack.callback(target.register_forward_hook(capture_hook(captured)).remove)
        else:  # blocks 0..L replay it
            target = stack.enter_context(blocks_replayed(lm.blocks, point.layer, cached))
        if replace is not None:
            stack.callback(target.register_forward_hook(splice).remove)
        logits = lm.model(input_ids=input_ids, **kwargs).logits
    if captured:
        lm.block_cache.put(key, captured[0])

    scored = torch.ones(B, T - 1, dtype=torch.bool, device=input_ids.device)
    if mask is not None:
        scored &= (mask[:, :-1] > 0) & (mask[:, 1:] > 0)
    if exclude_bos:
        scored &= ~keep[:, :-1]
    count = int(scored.sum())
    if count == 0:
        raise PSAEError(
            f"input_ids of shape {(B, T)}: no next-token predictions to score"
            + (" once the BOS position is excluded" if exclude_bos else "")
        )
    return CrossEntropyResult(_summed_ce(logits, input_ids, scored), count)


def _summed_ce(logits: torch.Tensor, input_ids: torch.Tensor, scored: torch.Tensor) -> float:
    """Σ over scored predictions of -log p(token t+1 | ≤ t), in fp32, a chunk of rows at a time."""
    B, T, V = logits.shape
    rows = max(1, LOGITS_CHUNK_BYTES // max(1, T * V * 4))
    total = torch.zeros((), dtype=torch.float64, device=logits.device)
    for s in range(0, B, rows):
        # Every position against the next token (the last one's target wraps around and is
        # never scored): the logits stay one contiguous [rows·T, V] view, with no copy.
        lg = logits[s:s + rows].float().contiguous()
        targets = input_ids[s:s + rows].roll(-1, dims=1)
        ce = F.cross_entropy(
            lg.view(-1, V), targets.reshape(-1), reduction="none"
        ).view(lg.shape[0], T)[:, :-1]
        total += torch.where(scored[s:s + rows], ce, 0.0).sum(dtype=torch.float64)
    return float(total)


def zero_ablation(x: torch.Tensor) -> torch.Tensor:
    """Replacement by zeros."""
    return torch.zeros_like(x)


def mean_ablation(mean_vector: torch.Tensor) -> Replacement:
    """Replacement of every position by one vector [d] (e.g. the mean activation)."""
    mean_vector = torch.as_tensor(mean_vector)
    if mean_vector.ndim != 1:
        raise PSAEError(f"mean vector of shape {tuple(mean_vector.shape)}: expected [d]")

    def replace(x: torch.Tensor) -> torch.Tensor:
        if mean_vector.shape[0] != x.shape[-1]:
            raise PSAEError(
                f"mean vector of size {mean_vector.shape[0]}: the hooked stream has d={x.shape[-1]}"
            )
        return mean_vector.to(dtype=x.dtype, device=x.device).expand_as(x).contiguous()

    return replace


def sae_splice(
    sae: Callable[..., torch.Tensor], granularity: int | None = None, mode: str = "relative"
) -> Replacement:
    """Replacement by an SAE's reconstruction of each position: [B, T, d] → [B·T, d] →
    `sae(x)` (or `sae(x, granularity, mode)`) → [B, T, d], in the SAE's dtype and device,
    cast back to the stream's."""
    params = next(sae.parameters(), None) if isinstance(sae, nn.Module) else None

    def replace(x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if params is not None:
            flat = flat.to(dtype=params.dtype, device=params.device)
        out = sae(flat) if granularity is None else sae(flat, granularity, mode)
        return out.reshape(x.shape).to(dtype=x.dtype, device=x.device)

    return replace
