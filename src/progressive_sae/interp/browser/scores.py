"""Reading per-latent explanations and scores: the `scores/*.jsonl` files `psae interp` writes.

A line counts when it is a JSON object with an integer `latent`. `psae interp` lines also
name their `sae` (folder name; 'random' is the control) and `interpreter` ('llm:<model>'
or 'baseline') and hold `scores: {method: {value, …}}`; plain lines with top-level
`simulation`/`fuzzing`/`detection` numbers are read too. One folder may hold several SAEs
(`psae run` files them under series names such as "TopK permuted by E[z²]"): the one asked
for by name is used, else the one named like the browsed SAE's folder, else the one whose
latent records (`records/<name>/records.json`) were collected from the same weights, else
the only one there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from progressive_sae.errors import PSAEError
from progressive_sae.interp.browser.payload import LatentScores

SCORE_KEYS = ("simulation", "fuzzing", "detection")
"""Score names read from the top level of a plain line."""
CONTROL = "random"
"""Name `psae interp` gives its randomly initialised control SAE."""
BASELINE = "baseline"


def _score(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _lines(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for file in sorted(folder.rglob("*.jsonl")):
        for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("latent"), int) \
                    and not isinstance(row["latent"], bool):
                rows.append(row)
    return rows


def _recorded_weights(folder: Path) -> dict[str, str]:
    """SAE name → the weights digest its latent records were collected from."""
    found = {}
    for path in sorted(folder.glob("records/*/records.json")):
        try:
            meta = json.loads(path.read_text(encoding="utf-8")).get("meta", {})
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if isinstance(meta, dict) and isinstance(meta.get("weights"), str):
            found[path.parent.name] = meta["weights"]
    return found


def _choose_sae(rows: list[dict[str, Any]], sae: str | None, folder: Path,
                name: str | None = None, weights: str | None = None) -> str | None:
    names = sorted({r["sae"] for r in rows if isinstance(r.get("sae"), str)} - {CONTROL})
    if name is not None:
        if name not in names:
            raise PSAEError(f"--scores-name {name!r}: {folder} holds scores of {names}; "
                            "expected one of them")
        return name
    if not names:
        return None
    wanted = Path(sae).resolve().name if sae is not None else None
    if wanted in names:
        return wanted
    same = [n for n, digest in _recorded_weights(folder).items()
            if weights is not None and digest == weights and n in names]
    if len(same) == 1:
        return same[0]
    if len(names) == 1:
        return names[0]
    raise PSAEError(f"--scores {folder} holds scores of the SAEs {names}, none named "
                    f"{wanted!r} or recorded from its weights: pick one with --scores-name")


def read_scores(folder: str | Path, sae: str | None = None, *, name: str | None = None,
                weights: str | None = None) -> LatentScores:
    """Explanations and scores under `folder` for one SAE: `name` as filed there, else the
    SAE whose folder is `sae`, else the one recorded from `weights` (a `weights_digest`
    hex); PSAEError if the folder holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PSAEError(f"--scores {folder}: not a folder; expected the output folder of "
                        "`psae interp`")
    rows = _lines(folder)
    chosen = _choose_sae(rows, sae, folder, name, weights)
    if chosen is not None:
        rows = [r for r in rows if r.get("sae") == chosen]
    interpreters = sorted({str(r.get("interpreter") or "") for r in rows},
                          key=lambda label: (label == BASELINE, label))
    several = len(interpreters) > 1
    explanations: dict[int, str] = {}
    scores: dict[str, dict[int, float | None]] = {}
    for row in rows:
        interpreter = str(row.get("interpreter") or "")
        is_baseline = interpreter == BASELINE
        suffix = f" ({'baseline' if is_baseline else 'llm'})" if several else ""
        latent = row["latent"]
        text = row.get("explanation")
        if isinstance(text, str) and (latent not in explanations or not is_baseline):
            explanations[latent] = f"[baseline] {text}" if is_baseline and several else text
        found = {k: row[k] for k in SCORE_KEYS if k in row}
        if isinstance(row.get("scores"), dict):
            found.update(row["scores"])
        for method, value in found.items():
            scores.setdefault(f"{method}{suffix}", {})[latent] = _score(value)
    if not explanations and not scores:
        raise PSAEError(f"--scores {folder}: holds no per-latent scores or explanations "
                        "(no *.jsonl lines with a 'latent'); expected the output folder of "
                        "`psae interp`")
    return LatentScores(explanations=explanations, scores=scores,
                        source=f"{folder} ({chosen}: {', '.join(i or '?' for i in interpreters)})"
                        if chosen else str(folder))
