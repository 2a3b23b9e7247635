"""`psae run`'s interpretability stage: the chosen SAEs' latents explained and scored on the
held-out activations, by the configured LLM and by the look-up-table baseline (SPEC §4.6)."""

from __future__ import annotations

import re
import shutil
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from progressive_sae.errors import PSAEError
from progressive_sae.experiment.config import ExperimentConfig
from progressive_sae.experiment.selection import pick_saes

if TYPE_CHECKING:
    from progressive_sae.experiment.catalogue import Catalogue
    from progressive_sae.experiment.runner import Prepared

PLOT_PREFIX = "interp_"


def llm_client(llm: Any, default_cache: Path) -> Any:
    """The client an `interp.llm` section names ('baseline' needs none)."""
    if llm.spec == "baseline":
        return "baseline"
    from progressive_sae.interp.clients import make_client, retry_policy

    cache = Path(llm.cache_dir) if llm.cache_dir else default_cache
    return make_client(llm.spec, url=llm.url, model=llm.model, api_key_env=llm.api_key_env,
                       cache_dir=cache, device=llm.device, concurrency=llm.concurrency,
                       retry=retry_policy(llm))


def run_interp(cfg: ExperimentConfig, cat: Catalogue, prepared: Prepared, plots_dir: Path,
               progress: bool) -> tuple[dict[str, Any], list[Path]]:
    """Interpret the section's SAEs; returns (results["interp"], plots copied to plots_dir)."""
    from progressive_sae.interp.pipeline import interpret

    section = cfg.interp
    assert section is not None
    if prepared.heldout_cache is None:
        raise PSAEError("interp: needs a language-model run ('text:'): latents are explained "
                        "from the held-out cache's token ids")
    saes = pick_saes(cfg, cat, section.saes, "interp.saes")
    out = cfg.out / "interp"
    client = llm_client(section.settings.llm, cfg.out / "llm_cache")
    result = interpret(saes, prepared.heldout_cache, client, section.settings, out=out,
                       tokenizer=prepared.lm.tokenizer, progress=progress)
    plots = []
    for path in sorted(result.plots.values()):
        target = plots_dir / f"{PLOT_PREFIX}{Path(path).name}"
        plots_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        plots.append(target)
    found = result.to_dict()
    if section.browsers:
        found["browsers"] = write_browsers(saes, prepared, section.settings, out, cfg.out,
                                           progress)
    return found, plots


def slug(name: str) -> str:
    """A folder name for a series label ("TopK permuted by E[z²]" → "topk-permuted-by-e-z2")."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "sae"


def write_browsers(saes: dict[str, Any], prepared: Prepared, settings: Any, interp_out: Path,
                   run_out: Path, progress: bool) -> dict[str, str]:
    """A feature browser per interpreted SAE, reusing the interp stage's latent records and
    showing its explanations and scores; returns label → index.html relative to the run."""
    from progressive_sae.interp.browser import build_browser, read_scores

    pages = {}
    for label, sae in saes.items():
        folder = run_out / "browsers" / slug(label)
        build_browser(sae, prepared.heldout_cache, folder, lm=prepared.lm,
                      scores=read_scores(interp_out, name=label),
                      records=interp_out / "records" / label, records_cfg=settings.records,
                      progress=progress)
        pages[label] = str((folder / "index.html").relative_to(run_out))
    return pages
