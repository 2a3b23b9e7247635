"""`interpret`: records → sampling → explanations and scores → summary and plots, per SAE.

Per SAE (plus a randomly initialised control of the same shape), per granularity bucket
(latents [G_i, G_{i+1})), per frequency quantile. Every stage keeps finished work: records
are saved (and checkpointed) per SAE, scores are rewritten atomically after each group of
latents, so an interrupted run, started again, scores only what is missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from progressive_sae.atomic import write_bytes_atomic, write_json_atomic
from progressive_sae.config_files import data_source
from progressive_sae.data.cache import check_sae_fits
from progressive_sae.errors import PSAEError
from progressive_sae.interp.baseline import LABEL as BASELINE
from progressive_sae.interp.baseline import BaselineInterpreter
from progressive_sae.interp.clients.base import LLMClient
from progressive_sae.interp.collect import collect_records, require_token_ids, source_meta
from progressive_sae.interp.config import InterpConfig
from progressive_sae.interp.explainer import Interpreter, LLMInterpreter
from progressive_sae.interp.plots import CONTROL, write_plots
from progressive_sae.interp.prompts import TokenText, load_tokenizer, token_text_from
from progressive_sae.interp.results import (
    InterpResult,
    read_scores,
    scores_path,
    summarise,
    write_scores,
)
from progressive_sae.interp.sampling import buckets, sample
from progressive_sae.interp.scoring import score_latents, skipped_result
from progressive_sae.sae import SAEConfig, build_sae
from progressive_sae.sae.base import SparseAutoencoder

GROUP = 8
"""Latents scored between two writes of a score file."""


def random_control(like: SparseAutoencoder, source: Any, seed: int = 0,
                   rows: int = 16_384) -> SparseAutoencoder:
    """A randomly initialised TopK SAE of `like`'s shape; b_dec = the data mean (so its
    latents fire on the data at all)."""
    k = like.cfg.k if like.cfg.activation != "jumprelu" else max(1, like.num_latents // 64)
    cfg = SAEConfig(d_in=like.d_in, num_latents=like.num_latents,
                    k=min(k, like.num_latents - 1), activation="topk",
                    granularities=like.cfg.granularities,
                    metadata={"control": "random initialisation", "seed": seed})
    sae = build_sae(cfg)
    sae.reset_parameters(torch.Generator().manual_seed(seed))
    with torch.no_grad():
        sae.b_dec.copy_(source.rows(0, min(len(source), rows)).mean(0))
    return sae.to(like.W_enc.device)


def bucket_boundaries(saes: Mapping[str, SparseAutoencoder], cfg: InterpConfig) -> list[int]:
    """cfg.granularities, else every Matryoshka granularity of the SAEs (a permuted TopK
    then uses the same G values, so buckets compare)."""
    if cfg.granularities is not None:
        return list(cfg.granularities)
    found = {g for sae in saes.values() for g in (sae.cfg.granularities or [])}
    return sorted(found)


def make_interpreters(client_or_baseline: Any, text: TokenText, cfg: InterpConfig
                      ) -> list[Interpreter]:
    """The LLM interpreter (unless 'baseline') and, with cfg.baseline, the baseline."""
    if client_or_baseline in (None, BASELINE) or isinstance(client_or_baseline,
                                                           BaselineInterpreter):
        return [BaselineInterpreter(text)]
    if isinstance(client_or_baseline, LLMClient):
        first: Interpreter = LLMInterpreter(client_or_baseline, text, cfg.explanation_tokens,
                                            cfg.llm.prompt)
    elif hasattr(client_or_baseline, "judge"):
        first = client_or_baseline
    else:
        raise PSAEError(f"{client_or_baseline!r}: expected an LLM client, an interpreter or "
                        f"'{BASELINE}'")
    return [first, BaselineInterpreter(text)] if cfg.baseline else [first]


def interpret(
    saes: Mapping[str, SparseAutoencoder], source: Any, client_or_baseline: Any,
    cfg: InterpConfig | None = None, *, out: str | Path, tokenizer: Any | None = None,
    progress: bool = False,
) -> InterpResult:
    """Explain and score latents of every SAE over `source` (a cache holding token ids).

    `client_or_baseline`: an `LLMClient` (from `clients.make_client`), an `Interpreter`, or
    'baseline'. Returns the summary (also written to `<out>/summary.json`), with per-latent
    scores in `<out>/scores/*.jsonl` and plots in `<out>/plots/`.
    """
    cfg = cfg or InterpConfig()
    out = Path(out)
    if isinstance(source, (str, Path)):
        source = data_source(source, text_order=True)
    if not saes:
        raise PSAEError("no SAE to interpret: expected at least one")
    if CONTROL in saes and cfg.control:
        raise PSAEError(f"an SAE is named {CONTROL!r}: that name is the random control's")
    for sae in saes.values():
        check_sae_fits(sae, source)
    require_token_ids(source)
    saes = dict(saes)
    if cfg.control:
        saes[CONTROL] = random_control(next(iter(saes.values())), source, cfg.seed)
    if tokenizer is None:
        tokenizer = load_tokenizer(source_meta(source))
    interpreters = make_interpreters(client_or_baseline, token_text_from(tokenizer), cfg)
    boundaries = bucket_boundaries(saes, cfg)
    timing: dict[str, float] = {"records": 0.0}
    info: dict[str, dict[str, Any]] = {}
    rows = []
    for name, sae in saes.items():
        start = time.perf_counter()
        records = collect_records(sae, source, cfg.records, out=out / "records" / name,
                                  progress=progress)
        timing["records"] += time.perf_counter() - start
        bands = buckets(boundaries, records.num_latents)
        info[name] = {"num_latents": records.num_latents, "control": name == CONTROL,
                      "buckets": [b.label for b in bands],
                      "records": str(out / "records" / name),
                      "live_latents": int(records.live().size)}
        for interpreter in interpreters:
            sampling = cfg.sampling_of(interpreter.label)
            drawn = [sample(records, band, sampling, cfg.seed) for band in bands]
            settings = json.dumps([records.meta.get("fingerprint"), asdict(sampling),
                                   cfg.methods, cfg.seed, cfg.explanation_tokens, boundaries,
                                   getattr(interpreter, "prompt", None)])
            rows += _score_sae(name, drawn, interpreter, cfg, out, timing, settings)
    summary = summarise(rows, cfg.methods, cfg.seed)
    result = InterpResult(
        out=str(out), saes=info, interpreters=[i.label for i in interpreters],
        methods=list(cfg.methods), summary=summary,
        plots=_plots(rows, cfg, out, summary), timing=timing,
        llm=_client_stats(client_or_baseline), config=json.loads(json.dumps(cfg.to_dict())))
    write_json_atomic(out / "summary.json", result.to_dict())
    return result


def _score_sae(name: str, drawn: list, interpreter: Interpreter, cfg: InterpConfig,
               out: Path, timing: dict[str, float], settings: str) -> list:
    """Scores of one SAE by one interpreter, resumed from its file when that was written
    for the same records and settings (else started over)."""
    path = scores_path(out, name, interpreter.label)
    key_file = path.with_suffix(".settings.json")
    same = key_file.is_file() and key_file.read_text() == settings
    done = {(r.bucket, r.latent): r for r in read_scores(path)} if same else {}
    if not same:  # stale lines must be gone before the new settings are recorded
        path.unlink(missing_ok=True)
        write_bytes_atomic(key_file, settings.encode())
    key = f"scoring {interpreter.label}"
    timing.setdefault(key, 0.0)
    timing.setdefault(f"latents {interpreter.label}", 0.0)
    wanted = sorted({(e.bucket.label, e.latent) for examples, _ in drawn for e in examples}
                    | {(s.bucket, s.latent) for _, skipped in drawn for s in skipped})
    for examples, skipped in drawn:
        for skip in skipped:
            done.setdefault((skip.bucket, skip.latent),
                            skipped_result(name, interpreter.label, skip))
        todo = [e for e in examples if (e.bucket.label, e.latent) not in done]
        for start in range(0, len(todo), GROUP):
            began = time.perf_counter()
            for r in score_latents(name, todo[start:start + GROUP], interpreter,
                                   cfg.methods, cfg.seed):
                done[(r.bucket, r.latent)] = r
            timing[key] += time.perf_counter() - began
            timing[f"latents {interpreter.label}"] += len(todo[start:start + GROUP])
            write_scores(path, [done[k] for k in wanted if k in done])
    rows = [done[k] for k in wanted]
    write_scores(path, rows)
    if timing[f"latents {interpreter.label}"]:
        timing[f"seconds per latent {interpreter.label}"] = (
            timing[key] / timing[f"latents {interpreter.label}"])
    return rows


def _plots(rows: list, cfg: InterpConfig, out: Path, summary: list) -> dict[str, str]:
    """Redrawn only when the scores changed since the last summary (or a plot is missing)."""
    previous = out / "summary.json"
    if previous.is_file():
        old = json.loads(previous.read_text())
        plots = old.get("plots", {})
        if (old.get("summary") == [s.to_dict() for s in summary]
                and plots and all(Path(p).is_file() for p in plots.values())
                and old.get("methods") == list(cfg.methods)):
            return plots
    return write_plots(rows, cfg.methods, out / "plots")


def _client_stats(client: Any) -> dict[str, Any]:
    stats = getattr(client, "stats", None)
    if stats is None:
        return {}
    if hasattr(stats, "to_dict"):
        return stats.to_dict()
    return dict(vars(stats)) if hasattr(stats, "__dict__") else {"stats": str(stats)}
