"""`psae run`'s seed-002 stage (SPEC §4.7): absorption, sparse probing and concept erasure of
the chosen SAEs per granularity on the run's LM, and ground-truth absorption on a synthetic
hierarchy that TopK and Matryoshka SAEs are trained on here."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from progressive_sae.atomic import write_json_atomic
from progressive_sae.errors import PSAEError
from progressive_sae.experiment.config import EvalsSection, ExperimentConfig
from progressive_sae.experiment.selection import pick_saes
from progressive_sae.json_files import read_json_object
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.io import weights_digest
from progressive_sae.settings import from_mapping

if TYPE_CHECKING:
    from progressive_sae.experiment.catalogue import Catalogue
    from progressive_sae.experiment.runner import Prepared


def view_granularities(section: EvalsSection, saes: dict[str, SparseAutoencoder]) -> list[int]:
    """The section's G values, else every Matryoshka size below the SAE's N."""
    if section.granularities is not None:
        return sorted(set(section.granularities))
    return sorted({g for s in saes.values() for g in (s.cfg.granularities or [])
                   if g < s.num_latents})


def run_evals(cfg: ExperimentConfig, cat: Catalogue, prepared: Prepared, plots_dir: Path,
              progress: bool) -> tuple[dict[str, Any], list[Path]]:
    """Run every enabled evaluation; returns (results["evals"], plots written)."""
    section = cfg.evals
    assert section is not None
    saes = pick_saes(cfg, cat, section.saes, "evals.saes")
    gs = view_granularities(section, saes)
    results: dict[str, Any] = {"saes": list(saes), "granularities": gs}
    plots: list[Path] = []
    lm_stages = [section.absorption, section.probing, section.erasure]
    if any(stage is not None for stage in lm_stages) and prepared.lm is None:
        raise PSAEError("evals: absorption, probing and erasure need a language-model run "
                        "('text:'); set them to null for ready activations")
    saved = cfg.out / "evals"

    def absorption() -> tuple[dict[str, Any], list[Path]]:
        result, plot = _absorption(section.absorption, saes, gs, prepared, plots_dir)
        return {"absorption": result}, [plot]

    def probing_and_erasure() -> tuple[dict[str, Any], list[Path]]:
        return _probing_and_erasure(section, saes, gs, prepared, plots_dir, progress)

    stages = [("absorption", section.absorption, absorption),
              ("probing_erasure", [section.probing, section.erasure], probing_and_erasure)]
    depends = _dependencies(saes, gs, prepared)
    for name, settings, compute in stages:
        if settings is None or settings == [None, None]:
            continue
        key = hashlib.sha256(json.dumps([name, settings], sort_keys=True, default=str).encode()
                             + depends).hexdigest()
        found, written = _reused(saved / f"{name}.json", plots_dir, key, compute)
        results.update(found)
        plots += written
    if section.hierarchy is not None:
        from progressive_sae.experiment.hierarchy_stage import run_hierarchy

        results["hierarchy"], plot = run_hierarchy(section.hierarchy, cfg, plots_dir, progress)
        plots.append(plot)
    return results, plots


def _dependencies(saes: dict[str, SparseAutoencoder], gs: list[int], prepared: Prepared
                  ) -> bytes:
    """What every stage's result depends on besides its settings: the views, the LM and hook,
    and the SAEs' names and weights (hashed once for all stages)."""
    digest = hashlib.sha256(json.dumps(
        [gs, getattr(prepared.lm, "name", None), str(prepared.hook)], default=str).encode())
    for name, sae in saes.items():
        digest.update(name.encode())
        digest.update(weights_digest(sae).digest())
    return digest.digest()


def _reused(record: Path, plots_dir: Path, key: str,
            compute: Callable[[], tuple[dict[str, Any], list[Path]]]
            ) -> tuple[dict[str, Any], list[Path]]:
    """A finished stage's results and plots when `record` holds them for the same `key` and
    the plots are still there (a second `psae run` redoes nothing); else computed, recorded."""
    try:
        saved = read_json_object(record, f"{record} is missing")
    except PSAEError:  # missing or damaged: computed again
        saved = {}
    plots = [plots_dir / name for name in saved.get("plots", [])]
    if saved.get("key") == key and plots and all(p.is_file() for p in plots):
        return saved["results"], plots
    results, plots = compute()
    write_json_atomic(record, {"key": key, "results": results,
                               "plots": [p.name for p in plots]})
    return results, plots


def absorption_settings(settings: dict[str, Any]) -> tuple[str, int, Any, Any]:
    """(task, rows per class, AbsorptionConfig, PromptConfig or None) of `evals.absorption`,
    checked (so a config can be validated without running it)."""
    from progressive_sae.evals.absorption import TASKS, AbsorptionConfig, PromptConfig

    settings = dict(settings)
    task = settings.pop("task", "word-start")
    if task not in TASKS:
        raise PSAEError(f"evals.absorption.task={task!r}: expected one of {list(TASKS)}")
    rows = settings.pop("rows_per_class", 256)
    prompts = settings.pop("prompts", None)
    if prompts is not None and task != "first-letter":
        raise PSAEError(f"evals.absorption.prompts: only the first-letter task builds prompts "
                        f"(task is {task!r})")
    prompt_config = None if prompts is None else from_mapping(
        PromptConfig, prompts, "evals.absorption.prompts")
    return task, rows, from_mapping(AbsorptionConfig, settings, "evals.absorption"), prompt_config


def _absorption(settings: dict[str, Any], saes: dict[str, SparseAutoencoder], gs: list[int],
                prepared: Prepared, plots_dir: Path) -> tuple[dict[str, Any], Path]:
    from progressive_sae.evals.absorption import evaluate_lm_absorption, plot_absorption

    task, rows, config, prompts = absorption_settings(settings)
    result = evaluate_lm_absorption(saes, prepared.lm, prepared.hook, task, gs, config=config,
                                    prompts=prompts, rows_per_class=rows)
    return result.to_dict(), plot_absorption(result, plots_dir / "absorption.png")


def _probing_and_erasure(section: EvalsSection, saes: dict[str, SparseAutoencoder],
                         gs: list[int], prepared: Prepared, plots_dir: Path,
                         progress: bool) -> tuple[dict[str, Any], list[Path]]:
    from progressive_sae.evals.erasure import ErasureConfig, evaluate_probing_and_erasure
    from progressive_sae.evals.erasure.plot import plot_erasure
    from progressive_sae.evals.probing import ProbingConfig
    from progressive_sae.evals.probing.plot import plot_probing

    probing = from_mapping(ProbingConfig, section.probing or {}, "evals.probing")
    erasure = from_mapping(ErasureConfig, {"ctx": probing.ctx, **(section.erasure or {})},
                           "evals.erasure")
    probe_result, erase_result = evaluate_probing_and_erasure(
        saes, prepared.lm, prepared.hook, gs, probing, erasure, progress=progress)
    found, plots = {}, []
    if section.probing is not None:
        found["probing"] = probe_result.to_dict()
        plots.append(plot_probing(probe_result, plots_dir / "sparse_probing.png"))
    if section.erasure is not None:
        found["erasure"] = erase_result.to_dict()
        plots.append(plot_erasure(erase_result, plots_dir / "concept_erasure.png"))
    return found, plots
