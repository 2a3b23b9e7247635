"""Training rows straight from a live language model: no disk cache (SPEC §5.1).

documents → token windows → the LM run up to the deepest hook → rows of every hook side by
side → a mixing buffer (`data/mixing.py`) → batches. `StreamConfig` is the `data:` section
that asks for it; `open_stream` builds this process's `StreamFeed`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from progressive_sae.data.feed import StreamFeed
from progressive_sae.errors import PSAEError
from progressive_sae.lm.rows import TORCH_DTYPES, pass_rows
from progressive_sae.lm.text import TextConfig
from progressive_sae.settings import from_mapping

STREAM_KEYS = ("lm", "text", "hook", "hooks", "buffer_tokens", "windows_per_pass",
               "exclude_bos", "dtype", "seed")


@dataclass
class StreamConfig:
    """`data:` of a run trained from a live LM. Memory (per process) is bounded by the mixing
    buffer, buffer_tokens × hooks × d × bytes(dtype), allocated once (e.g. 65,536 tokens × 1
    hook × d = 768 × 4 bytes = 192 MiB), plus one pass's rows (windows_per_pass × ctx × hooks ×
    d × bytes), one batch per hook in fp32, and the LM with its activations up to the
    deepest hook. Checkpoints hold a copy of the buffer on disk (written from the buffer's own
    memory, with no second copy in RAM)."""

    text: dict[str, Any]
    """TextConfig fields of the text (documents → windows of ctx tokens)."""
    lm: dict[str, Any] = field(default_factory=dict)
    """`model` (HF name or folder; default: the offline default), `device`, `dtype`."""
    hook: str | None = None
    """The hook point, e.g. layers.2 (or give `hooks`)."""
    hooks: list[str] | None = None
    """Several hook points read from the same forward pass, each with its own SAEs."""
    buffer_tokens: int = 65536
    """Rows (tokens) the mixing buffer holds; half are replaced at a time. At least two
    batches per process; 0 = no mixing (text order)."""
    windows_per_pass: int = 16
    """LM windows per forward pass (lower it if the LM runs out of memory)."""
    exclude_bos: bool = True
    """Drop the prepended BOS position of each window."""
    dtype: str = "float32"
    """Dtype rows are kept in while mixed: float32, float16 or bfloat16 (as a cache's)."""
    seed: int = 0
    """Seed of the mixing buffer's generator (each process adds its rank)."""

    def __post_init__(self) -> None:
        if (self.hook is None) == (self.hooks is None):
            raise PSAEError("data: give either 'hook' (e.g. layers.2) or 'hooks' (a list)")
        hooks = self.hook_names
        if not hooks or not all(isinstance(h, str) and h for h in hooks):
            raise PSAEError(f"data.hooks={self.hooks!r}: expected a non-empty list of hook names")
        if len(set(hooks)) != len(hooks):
            raise PSAEError(f"data.hooks={hooks}: each hook point once")
        for name in ("buffer_tokens", "windows_per_pass", "seed"):
            value, low = getattr(self, name), 1 if name == "windows_per_pass" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PSAEError(f"data.{name}={value!r}: expected an integer ≥ {low}")
        if self.dtype not in TORCH_DTYPES:
            raise PSAEError(f"data.dtype={self.dtype!r}: expected one of {sorted(TORCH_DTYPES)}")
        self.text_config = TextConfig.from_dict({**self.text, "part": "train"},
                                                where="data.text")

    @property
    def hook_names(self) -> list[str]:
        return [self.hook] if self.hook is not None else list(self.hooks or [])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamConfig:
        if not isinstance(data.get("text"), dict):
            raise PSAEError("data.text: expected a mapping of text settings (source, ctx, …)")
        return from_mapping(cls, data, "data")


def is_stream_spec(spec: object) -> bool:
    """Whether a `data:` entry asks for a live stream (it names text to read)."""
    return isinstance(spec, dict) and "text" in spec


class LMRows:
    """A RowFeed: the rows of one process's passes, every hook side by side."""

    def __init__(self, lm: Any, cfg: StreamConfig, hooks: list[str], rank: int = 0,
                 world: int = 1) -> None:
        self.lm, self.cfg, self.hooks, self.rank, self.world = lm, cfg, hooks, rank, world
        self.width = lm.d_model * len(hooks)

    def chunks(self, start: int) -> Iterator[torch.Tensor]:
        passes = pass_rows(self.lm, self.cfg.text_config, self.hooks, self.cfg.windows_per_pass,
                           exclude_bos=self.cfg.exclude_bos, dtype=self.cfg.dtype,
                           start_pass=self.rank + start * self.world, rank=self.rank,
                           world=self.world)
        for rows in passes:
            yield rows.acts[0] if len(rows.acts) == 1 else torch.cat(rows.acts, dim=1)

    def describe(self) -> str:
        return f"text source {self.cfg.text_config.source!r}"


def load_stream_lm(cfg: StreamConfig) -> Any:
    """The stream's LM, its hooks checked; an LM that does not fit is one line."""
    from progressive_sae.lm.hooks import resolve_hook
    from progressive_sae.lm.model import OFFLINE_DEFAULT, load_lm

    unknown = sorted(set(cfg.lm) - {"model", "device", "dtype"})
    if unknown:
        raise PSAEError(f"unknown key data.lm.{unknown[0]}; expected model, device, dtype")
    model, device = cfg.lm.get("model", OFFLINE_DEFAULT), cfg.lm.get("device", "cpu")
    try:
        lm = load_lm(model, device=device, dtype=cfg.lm.get("dtype"))
    except (torch.OutOfMemoryError, MemoryError):
        raise PSAEError(f"the LM {model!r} does not fit in the memory of {device}: use a "
                        "larger device or a smaller dtype (data.lm.dtype)") from None
    except RuntimeError as err:
        if "memory" not in str(err).lower():
            raise
        raise PSAEError(f"the LM {model!r} does not fit in the memory of {device} "
                        f"({str(err).splitlines()[0][:120]})") from None
    for hook in cfg.hook_names:
        resolve_hook(lm, hook)
    return lm


def open_stream(cfg: StreamConfig, batch_rows: int, lm: Any = None, rank: int = 0,
                world: int = 1) -> StreamFeed:
    """This process's stream: its own windows, a buffer seeded with seed + rank."""
    if cfg.buffer_tokens and cfg.buffer_tokens < 2 * batch_rows:
        raise PSAEError(f"data.buffer_tokens={cfg.buffer_tokens:,}: expected at least two "
                        f"batches of this process's {batch_rows:,} rows "
                        f"({2 * batch_rows:,}), or 0 for no mixing")
    lm = lm if lm is not None else load_stream_lm(cfg)
    from progressive_sae.lm.hooks import resolve_hook

    hooks = [resolve_hook(lm, hook).name for hook in cfg.hook_names]
    feed = LMRows(lm, cfg, hooks, rank, world)
    return StreamFeed(feed, hooks, lm.d_model, cfg.buffer_tokens, batch_rows, cfg.seed + rank,
                      facts={"windows_per_pass": cfg.windows_per_pass, "dtype": cfg.dtype,
                             "rank": rank, "world": world})
