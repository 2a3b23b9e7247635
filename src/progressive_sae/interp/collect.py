"""Streaming collection of latent records, resumable, memory bounded by latents × windows kept.

Rows are read in text order in batches cut at window boundaries (the rows of the last,
possibly unfinished window of a batch are read again with the next one), encoded, and
folded into the running state: counts, max, histogram, and per latent two bottom-k samples
merged with the batch's (latent, window) pairs (see records.py). Every `checkpoint_every`
rows the state is written atomically next to the output; a re-run continues from it and
ends with the same records as an uninterrupted run (the samples do not depend on batching).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from progressive_sae.atomic import write_folder, write_json_atomic
from progressive_sae.config_files import data_source
from progressive_sae.data.cache import check_sae_fits
from progressive_sae.errors import PSAEError
from progressive_sae.interp.config import InterpConfig, RecordsConfig
from progressive_sae.interp.records import POOL_FIELDS, WINDOW_FIELDS, LatentRecords
from progressive_sae.json_files import read_json_object
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.io import weights_digest

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return x ^ (x >> np.uint64(31))


def priority(seed: int, stream: np.ndarray | int, wid: np.ndarray) -> np.ndarray:
    """A uniform [0, 1) priority per (seed, stream, window): bottom-k = a uniform sample."""
    wid = np.asarray(wid, dtype=np.int64).astype(np.uint64)
    stream = np.broadcast_to(np.asarray(stream, dtype=np.int64), wid.shape).astype(np.uint64)
    x = _mix(_mix(_mix(np.full(wid.shape, seed, dtype=np.uint64)) ^ stream) ^ wid)
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53)


def require_token_ids(source: Any) -> None:
    """PSAEError unless `source` reads token ids beside its activations."""
    where = getattr(source, "dir", None) or type(source).__name__
    if not hasattr(source, "token_table"):
        raise PSAEError(f"the activation source {where} holds no token ids: expected an "
                        "activation cache written by `psae extract` (or an LM and text)")
    probe = source.token_table(0, min(len(source), 64))
    if probe.size == 0 or bool(np.all(probe[:, 2] < 0)):
        raise PSAEError(f"the activation cache at {where} holds no token ids (its token "
                        "column is empty or -1): extract it from a language model")


def source_meta(source: Any) -> dict[str, Any]:
    """Where the tokens came from: cache folder, model, hook, tokenizer (from its manifest)."""
    manifest = getattr(source, "manifest", {}) or {}
    meta = {key: manifest.get(key) for key in ("model", "hook", "ctx", "tokenizer")
            if key in manifest}
    if getattr(source, "dir", None) is not None:
        meta["cache"] = str(source.dir)
    return meta


class _State:
    """The running records: plain numpy arrays, saved and restored as a flat dict."""

    def __init__(self, n: int, cfg: RecordsConfig) -> None:
        w, b = cfg.window, cfg.histogram_bins
        self.n, self.cfg = n, cfg
        self.arrays: dict[str, np.ndarray] = {
            "count": np.zeros(n, np.int64), "max_act": np.zeros(n, np.float32),
            "hist": np.zeros((n, b), np.int64),
            "pool_key": np.full(cfg.nonactivating_pool, np.inf),
            "pool_wid": np.full(cfg.nonactivating_pool, -1, np.int64),
            "pool_loc": np.zeros((cfg.nonactivating_pool, 2), np.int64),
            "pool_tokens": np.full((cfg.nonactivating_pool, w), -1, np.int32),
            "pool_active": np.zeros((cfg.nonactivating_pool, n), bool),
        }
        for name, k in (("top", cfg.top_windows), ("res", cfg.reservoir)):
            self.arrays.update({
                f"{name}_key": np.full((n, k), np.inf), f"{name}_wid": np.full((n, k), -1),
                f"{name}_score": np.zeros((n, k), np.float32),
                f"{name}_loc": np.zeros((n, k, 2), np.int64),
                f"{name}_tokens": np.full((n, k, w), -1, np.int32),
                f"{name}_acts": np.zeros((n, k, w), np.float32),
            })
        self.next_row = 0
        self.next_wid = 0
        self.edges = np.geomspace(*cfg.histogram_range, cfg.histogram_bins + 1)

    def records(self, granularity: int | None, meta: dict[str, Any]) -> LatentRecords:
        keep = ["count", "max_act", "hist"] + [f"{s}_{f}" for s in ("top", "res")
                                              for f in WINDOW_FIELDS]
        keep += [f"pool_{f}" for f in POOL_FIELDS]
        tensors = {k: torch.from_numpy(np.ascontiguousarray(self.arrays[k])) for k in keep}
        return LatentRecords(num_latents=self.n, window=self.cfg.window,
                             tokens_seen=self.next_row, windows_seen=self.next_wid,
                             granularity=granularity, mode=self.cfg.mode,
                             hist_edges=self.edges, tensors=tensors, meta=meta)

    # -- one batch -----------------------------------------------------------------------------

    def add(self, table: np.ndarray, values: np.ndarray, latents: np.ndarray) -> None:
        """Fold in rows (their token table and sparse code: [rows, k] values and indices)."""
        cfg, n, w = self.cfg, self.n, self.cfg.window
        seq, pos, tok = table[:, 0], table[:, 1], table[:, 2]
        first = pos // w * w
        new = np.ones(len(table), bool)
        new[1:] = (seq[1:] != seq[:-1]) | (first[1:] != first[:-1])
        local = np.cumsum(new) - 1
        wids = self.next_wid + np.arange(int(local[-1]) + 1)
        win_tokens = np.full((len(wids), w), -1, np.int32)
        slot = pos - first
        win_tokens[local, slot] = tok
        win_loc = np.stack([seq[new], first[new]], axis=1)

        rows, cols = np.nonzero((values > 0) & (latents < n))
        v, lat = values[rows, cols].astype(np.float32), latents[rows, cols].astype(np.int64)
        a = self.arrays
        a["count"] += np.bincount(lat, minlength=n)
        np.maximum.at(a["max_act"], lat, v)
        bins = np.clip(np.searchsorted(self.edges, v, side="right") - 1, 0, len(self.edges) - 2)
        a["hist"] += np.bincount(lat * a["hist"].shape[1] + bins,
                                 minlength=a["hist"].size).reshape(a["hist"].shape)

        pair, inverse = np.unique(local[rows] * n + lat, return_inverse=True)
        pmax = np.zeros(len(pair), np.float32)
        np.maximum.at(pmax, inverse, v)
        plat, pwin = pair % n, pair // n
        merges = [("top", -pmax.astype(np.float64)),
                  ("res", priority(cfg.seed, plat, wids[pwin]))] if len(pair) else []
        for name, key in merges:
            lat_rows, slots, chosen = self._merge(name, plat, key, wids[pwin])
            acts = np.zeros((len(chosen), w), np.float32)
            owner = np.full(len(pair), -1)
            owner[chosen] = np.arange(len(chosen))
            e = owner[inverse]
            hit = e >= 0
            acts[e[hit], slot[rows[hit]]] = v[hit]
            a[f"{name}_score"][lat_rows, slots] = pmax[chosen]
            a[f"{name}_loc"][lat_rows, slots] = win_loc[pwin[chosen]]
            a[f"{name}_tokens"][lat_rows, slots] = win_tokens[pwin[chosen]]
            a[f"{name}_acts"][lat_rows, slots] = acts
        self._merge_pool(wids, win_tokens, win_loc, pwin, plat)
        self.next_row += len(table)
        self.next_wid += len(wids)

    def _merge(self, name: str, lat: np.ndarray, key: np.ndarray, wid: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Merge candidates into `name`'s bottom-k per latent; returns (latent, slot,
        candidate index) of every candidate that was kept (payload still to be written)."""
        a = self.arrays
        k = a[f"{name}_key"].shape[1]
        # Rows are sorted, so a candidate not below a latent's last key cannot enter (an
        # equal key loses the tie: every candidate's wid is larger than those kept).
        enters = key < a[f"{name}_key"][lat, -1]
        if not enters.any():
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
        lat, key, wid = lat[enters], key[enters], wid[enters]
        entering = np.flatnonzero(enters)
        order = np.lexsort((wid, key, lat))
        lat_s = lat[order]
        starts = np.r_[0, np.flatnonzero(lat_s[1:] != lat_s[:-1]) + 1]
        group = np.cumsum(np.r_[False, lat_s[1:] != lat_s[:-1]])
        rank = np.arange(len(order)) - starts[group]
        keep = rank < k
        latents = lat_s[starts]
        g, r, cand = group[keep], rank[keep], order[keep]
        new_key = np.full((len(latents), k), np.inf)
        new_wid = np.full((len(latents), k), -1)
        new_src = np.full((len(latents), k), -1)
        new_key[g, r], new_wid[g, r], new_src[g, r] = key[cand], wid[cand], cand
        old_key, old_wid = a[f"{name}_key"][latents], a[f"{name}_wid"][latents]
        all_key = np.concatenate([old_key, new_key], axis=1)
        all_wid = np.concatenate([old_wid, new_wid], axis=1)
        # Empty slots (key inf) sort last; among real entries ties go to the smaller wid.
        tie = np.where(np.isinf(all_key), np.iinfo(np.int64).max, all_wid)
        pick = np.lexsort((tie, all_key), axis=1)[:, :k]
        src = np.concatenate([np.full_like(old_wid, -1), new_src], axis=1)
        take = np.take_along_axis
        from_old = pick < k
        for field in ("key", "wid", "score", "loc", "tokens", "acts"):
            old = a[f"{name}_{field}"][latents]
            index = np.where(from_old, pick, 0).reshape(pick.shape + (1,) * (old.ndim - 2))
            moved = take(old, index, axis=1)
            if field == "key":
                moved = take(all_key, pick, axis=1)
            elif field == "wid":
                moved = take(all_wid, pick, axis=1)
            a[f"{name}_{field}"][latents] = moved
        chosen = take(src, pick, axis=1)
        fresh = chosen >= 0
        lat_rows = np.broadcast_to(latents[:, None], pick.shape)[fresh]
        slots = np.broadcast_to(np.arange(k), pick.shape)[fresh]
        return lat_rows, slots, entering[chosen[fresh]]

    def _merge_pool(self, wids: np.ndarray, tokens: np.ndarray, loc: np.ndarray,
                    pwin: np.ndarray, plat: np.ndarray) -> None:
        a, m = self.arrays, self.cfg.nonactivating_pool
        key = np.concatenate([a["pool_key"], priority(self.cfg.seed, -1, wids)])
        pick = np.argsort(key, kind="stable")[:m]
        active = np.zeros((len(wids), self.n), bool)
        active[pwin, plat] = True
        for field, new in (("wid", wids), ("loc", loc), ("tokens", tokens), ("active", active)):
            a[f"pool_{field}"] = np.concatenate([a[f"pool_{field}"], new])[pick]
        a["pool_key"] = key[pick]

    # -- checkpoints ---------------------------------------------------------------------------

    def save(self, path: Path, fingerprint: str) -> None:
        def fill(scratch: Path) -> None:
            save_file({k: torch.from_numpy(np.ascontiguousarray(v))
                       for k, v in self.arrays.items()}, scratch / "state.safetensors")
            write_json_atomic(scratch / "state.json", {
                "fingerprint": fingerprint, "next_row": self.next_row,
                "next_wid": self.next_wid})

        write_folder(path, True, fill)

    def restore(self, path: Path, fingerprint: str) -> bool:
        info = read_json_object(path / "state.json", f"{path} is not a records checkpoint")
        if info.get("fingerprint") != fingerprint:
            return False
        loaded = load_file(path / "state.safetensors")
        self.arrays = {k: v.numpy().copy() for k, v in loaded.items()}
        self.next_row, self.next_wid = int(info["next_row"]), int(info["next_wid"])
        return True


def _fingerprint(weights: str, source: Any, cfg: RecordsConfig) -> str:
    digest = hashlib.sha256(weights.encode())
    digest.update(json.dumps(asdict(cfg), sort_keys=True, default=str).encode())
    digest.update(f"{getattr(source, 'dir', '')}:{len(source)}".encode())
    return digest.hexdigest()


@torch.no_grad()
def collect_records(
    sae: SparseAutoencoder, source: Any, cfg: RecordsConfig | InterpConfig | None = None,
    out: str | Path | None = None, progress: bool = False,
) -> LatentRecords:
    """Records of every latent of `sae` (at cfg.granularity) over `source` in text order.

    `source`: a `CachedActivations` folder or object holding token ids (it is read with
    shuffle_buffer=0). With `out`, the records are saved there atomically and a checkpoint
    of the running state is kept beside it (`.<name>.partial`) until they are: an
    interrupted call, run again, continues from it; a finished `out` of the same SAE, source
    and settings (a fingerprint in its meta) is loaded, not redone.
    """
    cfg = cfg.records if isinstance(cfg, InterpConfig) else (cfg or RecordsConfig())
    if isinstance(source, (str, Path)):
        source = data_source(source, text_order=True)
    elif getattr(source, "shuffle", False):
        raise PSAEError("the activation cache is shuffled: open it with shuffle_buffer=0 "
                        "(records need rows in text order)")
    check_sae_fits(sae, source)
    require_token_ids(source)
    g = cfg.granularity if cfg.granularity is not None else sae.num_latents
    if g > sae.num_latents:
        raise PSAEError(f"records.granularity={g}: expected ≤ num_latents={sae.num_latents}")
    granularity = None if g == sae.num_latents else g
    weights = weights_digest(sae).hexdigest()
    fingerprint = _fingerprint(weights, source, cfg)
    meta = {**source_meta(source), "sae": dict(sae.cfg.metadata), "config": asdict(cfg),
            "fingerprint": fingerprint, "weights": weights}
    out = Path(out) if out is not None else None
    if out is not None and (out / "records.json").is_file():
        done = LatentRecords.load(out)
        if done.meta.get("fingerprint") == fingerprint:
            return done  # else: another SAE, source or config — collected again

    state = _State(g, cfg)
    end = len(source) if cfg.max_tokens is None else min(len(source), cfg.max_tokens)
    partial = out.with_name(f".{out.name}.partial") if out is not None else None
    if partial is not None and (partial / "state.json").is_file():
        if not state.restore(partial, fingerprint):
            shutil.rmtree(partial, ignore_errors=True)
    device = sae.W_enc.device
    batch = max(cfg.batch_rows, cfg.window + 1)
    last_saved = state.next_row

    from tqdm.auto import tqdm

    bar = tqdm(total=end, initial=state.next_row, unit="tok", disable=not progress,
               desc="latent records")
    while state.next_row < end:
        start = state.next_row
        stop = min(end, start + batch)
        table = source.token_table(start, stop)
        if stop < end:  # the last window may go on in the next batch: read it again there
            seq, first = table[:, 0], table[:, 1] // cfg.window
            cut = np.flatnonzero((seq[1:] != seq[:-1]) | (first[1:] != first[:-1]))
            table = table[:int(cut[-1]) + 1]
        x = source.rows(start, start + len(table)).to(device)
        code = sae.encode(x, g, cfg.mode)
        state.add(table, code.values.float().cpu().numpy(), code.indices.cpu().numpy())
        bar.update(len(table))
        if partial is not None and state.next_row - last_saved >= cfg.checkpoint_every:
            state.save(partial, fingerprint)
            last_saved = state.next_row
    bar.close()
    records = state.records(granularity, meta)
    if out is not None:
        records.save(out)
        shutil.rmtree(partial, ignore_errors=True)
    return records
