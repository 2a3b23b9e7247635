"""Latent records: what interpretability and the browser know of each latent (SPEC §4.6).

Per latent: how many tokens it fired on, its max activation, an activation histogram, its
`top_windows` activating windows with the largest max activation, and a uniform sample
(`reservoir`) of ALL its activating windows; beside them one uniform pool of windows of the
stream with, for each, which latents fire anywhere in it (non-activating examples).
A window is `window` consecutive tokens of one sequence (the last of a sequence may be
shorter; padding slots hold token -1 and activation 0).

Windows are numbered in stream order (`wid`). Both samples are "bottom-k by a hashed
priority" (a hash of seed, latent and wid): a uniform sample without replacement that does
not depend on how the stream was cut into batches, so a resumed collection keeps exactly
what an uninterrupted one keeps. Top windows are ordered by max activation (descending),
ties by wid (ascending); unused slots have wid -1.

On disk: `records.safetensors` (the tensors below) and `records.json` (everything else).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from progressive_sae.atomic import write_folder, write_json_atomic
from progressive_sae.errors import PSAEError
from progressive_sae.json_files import read_json_object

FORMAT = "progressive-sae latent records"
VERSION = 1
TENSORS = "records.safetensors"
INFO = "records.json"

LATENT_TENSORS = ("count", "max_act", "hist")
"""[N], [N], [N, bins]."""
WINDOW_SETS = ("top", "res")
"""Per latent window sets: `top` (K by max activation) and `res` (the uniform reservoir)."""
WINDOW_FIELDS = ("wid", "score", "loc", "tokens", "acts")
"""[N, K] int64 window number, [N, K] max activation, [N, K, 2] (sequence, first position),
[N, K, W] int32 tokens, [N, K, W] float32 activations."""
POOL_FIELDS = ("wid", "loc", "tokens", "active")
"""[M] int64, [M, 2], [M, W] int32 tokens, [M, N] bool: does the latent fire in the window."""


@dataclass(frozen=True)
class Window:
    """One window of text with one latent's activation on each of its tokens."""

    wid: int
    """Window number in stream order."""
    sequence: int
    """Sequence (context window of the cache) it comes from."""
    start: int
    """Position of its first slot in that sequence."""
    tokens: np.ndarray
    """Token ids (padding slots dropped)."""
    acts: np.ndarray
    """The latent's activation per token (0 in non-activating windows)."""

    @property
    def max_act(self) -> float:
        return float(self.acts.max()) if self.acts.size else 0.0


@dataclass
class LatentRecords:
    """Records of every latent of one SAE (at one granularity) over one token stream."""

    num_latents: int
    """Latents recorded (G at granularity G)."""
    window: int
    """Tokens per window."""
    tokens_seen: int
    """Activation rows read."""
    windows_seen: int
    """Windows read."""
    granularity: int | None
    """G of the recorded code; None = the full dictionary."""
    mode: str
    """'relative' (re-encoded with k_G) or 'prefix' (full code, latents ≥ G dropped)."""
    hist_edges: np.ndarray
    """Histogram bin edges [bins + 1]."""
    tensors: dict[str, torch.Tensor]
    """count, max_act, hist, top_*/res_* (WINDOW_FIELDS), pool_* (POOL_FIELDS)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Provenance: SAE, source cache, tokenizer, config."""

    # -- per latent --------------------------------------------------------------------------

    @property
    def counts(self) -> np.ndarray:
        return self.tensors["count"].numpy()

    @property
    def frequency(self) -> np.ndarray:
        """Fraction of tokens each latent fires on."""
        return self.counts / max(1, self.tokens_seen)

    @property
    def max_activation(self) -> np.ndarray:
        return self.tensors["max_act"].numpy()

    @property
    def histogram(self) -> np.ndarray:
        return self.tensors["hist"].numpy()

    def live(self) -> np.ndarray:
        """Indices of latents that fired at least once."""
        return np.flatnonzero(self.counts > 0)

    def windows(self, latent: int, which: str = "top") -> list[Window]:
        """The kept windows of `latent`: 'top' (ranked) or 'res' (the uniform reservoir)."""
        if which not in WINDOW_SETS:
            raise PSAEError(f"window set {which!r}: expected one of {WINDOW_SETS}")
        self._check_latent(latent)
        t = {f: self.tensors[f"{which}_{f}"][latent].numpy() for f in WINDOW_FIELDS}
        return [_window(int(t["wid"][i]), t["loc"][i], t["tokens"][i], t["acts"][i])
                for i in np.flatnonzero(t["wid"] >= 0)]

    def nonactivating(self, latent: int) -> list[Window]:
        """Pool windows where `latent` is 0 on every token (in pool order)."""
        self._check_latent(latent)
        wid = self.tensors["pool_wid"].numpy()
        quiet = (wid >= 0) & ~self.tensors["pool_active"][:, latent].numpy()
        loc, tokens = self.tensors["pool_loc"].numpy(), self.tensors["pool_tokens"].numpy()
        return [_window(int(wid[i]), loc[i], tokens[i], np.zeros(self.window, np.float32))
                for i in np.flatnonzero(quiet)]

    def _check_latent(self, latent: int) -> None:
        if not 0 <= latent < self.num_latents:
            raise PSAEError(f"latent {latent}: expected 0 ≤ latent < {self.num_latents}")

    # -- files -------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "num_latents": self.num_latents,
                "window": self.window, "tokens_seen": self.tokens_seen,
                "windows_seen": self.windows_seen, "granularity": self.granularity,
                "mode": self.mode, "hist_edges": [float(e) for e in self.hist_edges],
                "meta": self.meta}

    def save(self, path: str | Path, overwrite: bool = True) -> Path:
        """Write the records folder atomically (a crash leaves the previous one intact)."""
        def fill(scratch: Path) -> None:
            save_file({k: v.contiguous() for k, v in self.tensors.items()}, scratch / TENSORS)
            write_json_atomic(scratch / INFO, self.info())

        return write_folder(path, overwrite, fill)

    @classmethod
    def load(cls, path: str | Path) -> LatentRecords:
        path = Path(path)
        info = read_json_object(path / INFO, f"{path} holds no latent records (no {INFO})")
        if info.get("format") != FORMAT or info.get("version") != VERSION:
            raise PSAEError(f"{path / INFO} is not a version-{VERSION} latent records file")
        if not (path / TENSORS).is_file():
            raise PSAEError(f"{path / TENSORS} is missing")
        return cls(num_latents=int(info["num_latents"]), window=int(info["window"]),
                   tokens_seen=int(info["tokens_seen"]), windows_seen=int(info["windows_seen"]),
                   granularity=info["granularity"], mode=info["mode"],
                   hist_edges=np.asarray(info["hist_edges"], dtype=np.float64),
                   tensors=load_file(path / TENSORS), meta=info.get("meta", {}))


def _window(wid: int, loc: np.ndarray, tokens: np.ndarray, acts: np.ndarray) -> Window:
    keep = tokens >= 0
    return Window(wid=wid, sequence=int(loc[0]), start=int(loc[1]),
                  tokens=tokens[keep].astype(np.int64), acts=acts[keep].astype(np.float32))
