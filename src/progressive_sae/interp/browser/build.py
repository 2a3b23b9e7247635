"""`psae browse` as a function: SAE + activation cache (+ LM, scores) → DIR/index.html.

Checks come first (the SAE fits the cache, the cache holds token ids, the scores folder
holds scores, the LM loads and fits the SAE), then the slow parts: latent records (collected,
or reused from a records folder), the payload and the page.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from progressive_sae.data.cache import check_sae_fits
from progressive_sae.errors import PSAEError, first_line
from progressive_sae.interp.browser.page import write_page
from progressive_sae.interp.browser.payload import LatentScores, PayloadConfig, build_payload
from progressive_sae.interp.browser.scores import read_scores
from progressive_sae.interp.collect import collect_records, require_token_ids
from progressive_sae.interp.config import RecordsConfig
from progressive_sae.interp.records import LatentRecords
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.io import weights_digest


@dataclass
class BrowseResult:
    """What `build_browser` wrote."""

    page: Path
    """The HTML page."""
    latents: int
    """Latents listed on the page."""
    bytes: int
    """Size of the page."""
    seconds: float
    """Wall time of the whole build (records included)."""
    lm: str | None
    """The LM that gave token text and logit effects (None: token ids only)."""
    notes: list[str] = field(default_factory=list)
    """Things a person should know (e.g. why no LM was used)."""

    def to_dict(self) -> dict[str, Any]:
        return {"page": str(self.page), "latents": self.latents, "bytes": self.bytes,
                "seconds": self.seconds, "lm": self.lm, "notes": list(self.notes)}


def open_source(data: str | Path | Any) -> Any:
    """Activations as every command reads them (`config_files.data_source`; a cache in text
    order), or a source object as it is."""
    from progressive_sae.config_files import data_source

    return data_source(data, text_order=True) if isinstance(data, (str, Path)) else data


def resolve_lm(lm: str | Any | None, source: Any, notes: list[str]) -> Any | None:
    """The LM given, else the one the cache's manifest names when it is at hand locally
    (the offline default or a model folder); None, with a note, otherwise."""
    from progressive_sae.lm import load_lm
    from progressive_sae.lm.model import LOCAL_NAMES, recorded_name

    if lm is not None and not isinstance(lm, str):
        return lm
    if lm is not None:
        return load_lm(lm)
    recorded = (getattr(source, "manifest", None) or {}).get("model")
    if not recorded:
        notes.append("no LM: the cache names no model; tokens are shown as ids (pass --lm)")
        return None
    recorded = recorded_name(recorded)
    if recorded not in LOCAL_NAMES and not (Path(recorded) / "config.json").is_file():
        notes.append(f"no LM: the cache's model {recorded!r} is not a local model folder; "
                     "tokens are shown as ids (pass --lm)")
        return None
    try:
        return load_lm(recorded)
    except PSAEError as err:
        notes.append(f"no LM: the cache's model could not be loaded ({first_line(err)}); "
                     "tokens are shown as ids (pass --lm)")
        return None


def _check_records(records: LatentRecords, granularity: int | None, mode: str,
                   where: Path) -> None:
    if records.num_latents != (granularity or records.num_latents) or \
            records.granularity != granularity or \
            (granularity is not None and records.mode != mode):
        held = (f"granularity {records.granularity} ({records.mode})"
                if records.granularity is not None else "the full dictionary")
        wanted = f"granularity {granularity} ({mode})" if granularity else "the full dictionary"
        raise PSAEError(f"--records {where} holds records of {held}: expected {wanted}")


def build_browser(
    sae: str | Path | SparseAutoencoder,
    data: str | Path | Any,
    out: str | Path,
    granularity: int | None = None,
    mode: str = "relative",
    lm: str | Any | None = None,
    scores: str | Path | LatentScores | None = None,
    records: str | Path | LatentRecords | None = None,
    latents: int | None = None,
    scores_name: str | None = None,
    records_cfg: RecordsConfig | None = None,
    payload_cfg: PayloadConfig | None = None,
    progress: bool = False,
) -> BrowseResult:
    """Write `out/index.html`: the feature browser of `sae` over the activation cache `data`.

    Args:
        sae: an SAE folder (any supported format) or a loaded SAE.
        data: an activation cache folder with token ids (from `psae extract`).
        out: the output folder (created; an existing index.html is replaced atomically).
        granularity, mode: browse the SAE at G (latents < G; 'relative': re-encoded with
            k_G, 'prefix': the full code with latents ≥ G dropped). None: all latents.
        lm: model name or path, a loaded LanguageModel, or None for the cache's own model
            when it is available locally.
        scores: a `psae interp` output folder (explanations and scores per latent).
        scores_name: the SAE's name in that folder; None = found from the SAE's folder name
            or its weights (the interp run's latent records name the weights they read).
        records: a records folder: reused when finished, else collected and saved there.
        latents: list only the first this many latents.
    """
    from progressive_sae.formats import import_sae

    start = time.perf_counter()
    notes: list[str] = []
    sae_name = str(sae) if isinstance(sae, (str, Path)) else type(sae).__name__
    if isinstance(sae, (str, Path)):
        sae = import_sae(sae)
    source = open_source(data)
    check_sae_fits(sae, source)
    require_token_ids(source)
    if granularity is not None and not 1 <= granularity <= sae.num_latents:
        raise PSAEError(f"--granularity {granularity}: expected 1 ≤ G ≤ "
                        f"num_latents={sae.num_latents}")
    if granularity == sae.num_latents:
        granularity = None
    if latents is not None and (isinstance(latents, bool) or not isinstance(latents, int)
                                or latents < 1):
        raise PSAEError(f"--latents {latents!r}: expected a positive integer")
    if isinstance(scores, (str, Path)):
        scores = read_scores(scores, sae=sae_name, name=scores_name,
                             weights=weights_digest(sae).hexdigest())

    model = resolve_lm(lm, source, notes)
    if model is not None and model.d_model != sae.d_in:
        raise PSAEError(f"--lm {model.name}: d_model={model.d_model} but the SAE reads "
                        f"d_in={sae.d_in}; expected the LM whose activations it reads")

    base = records_cfg or RecordsConfig()
    cfg = dataclasses.replace(base, granularity=granularity, mode=mode)
    if isinstance(records, LatentRecords):
        _check_records(records, granularity, mode, Path("<given>"))
    else:
        where = Path(records) if records is not None else None
        records = collect_records(sae, source, cfg, out=where, progress=progress)
        if where is not None:
            _check_records(records, granularity, mode, where)

    tokenizer = getattr(model, "tokenizer", None) if model is not None else None
    count = records.num_latents if latents is None else min(latents, records.num_latents)
    manifest = getattr(source, "manifest", {}) or {}
    meta = {
        "SAE": sae_name, "architecture": type(sae).__name__,
        "latents": f"{count} of {sae.num_latents}", "k": sae.cfg.k,
        "granularity": (f"{granularity} ({mode})" if granularity is not None else None),
        "data": str(getattr(source, "dir", data)), "hook": manifest.get("hook"),
        "tokens": f"{records.tokens_seen:,}", "window": records.window,
        "LM": _lm_label(model),
        "scores": scores.source if isinstance(scores, LatentScores) else None,
    }
    payload = build_payload(
        records, sae.W_dec.detach(), range(count), tokenizer=tokenizer, lm=model,
        scores=scores, meta=meta, title=f"Feature browser: {Path(sae_name).name}",
        cfg=payload_cfg,
    )
    page = write_page(payload, out)
    return BrowseResult(page=page, latents=count, bytes=page.stat().st_size,
                        seconds=time.perf_counter() - start,
                        lm=_lm_label(model), notes=notes)


def _lm_label(model: Any | None) -> str | None:
    """The model's name; the shipped model by its short name, not its install path."""
    if model is None:
        return None
    from progressive_sae.lm.model import OFFLINE_DEFAULT
    from progressive_sae.lm.offline import DEFAULT_LM_PATH

    name = str(getattr(model, "name", "") or type(model).__name__)
    return OFFLINE_DEFAULT if name == str(DEFAULT_LM_PATH) else name
