"""Reading per-latent explanations and scores (the JSON lines `psae interp` writes).

Any `*.jsonl` file under the folder is read; a line counts when it is an object with an
integer `latent`. Its `explanation` (a string) and its scores are kept: numbers (or null)
under the keys of `SCORE_KEYS`, or inside a `scores` object. Lines of other SAEs are
skipped when `sae` is given and the line names one (`sae` key, compared by folder name).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from progressive_sae.errors import PSAEError
from progressive_sae.interp.browser.payload import LatentScores

SCORE_KEYS = ("simulation", "fuzzing", "detection")
"""Score names read from the top level of a line."""


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def read_scores(folder: str | Path, sae: str | None = None) -> LatentScores:
    """Explanations and scores under `folder`; PSAEError if it holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PSAEError(f"--scores {folder}: not a folder; expected the output folder of "
                        "`psae interp`")
    explanations: dict[int, str] = {}
    scores: dict[str, dict[int, float | None]] = {}
    for file in sorted(folder.rglob("*.jsonl")):
        for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict):
                continue
            latent = row.get("latent")
            if isinstance(latent, bool) or not isinstance(latent, int):
                continue
            if sae is not None and isinstance(row.get("sae"), str) and \
                    Path(row["sae"]).name != Path(sae).name:
                continue
            if isinstance(row.get("explanation"), str):
                explanations[latent] = row["explanation"]
            found = {k: row[k] for k in SCORE_KEYS if k in row}
            if isinstance(row.get("scores"), dict):
                found.update(row["scores"])
            for name, value in found.items():
                if value is None or _score(value) is not None or isinstance(value, dict):
                    if isinstance(value, dict):
                        value = value.get("value", value.get("score"))
                    scores.setdefault(str(name), {})[latent] = _score(value)
    if not explanations and not scores:
        raise PSAEError(f"--scores {folder}: holds no per-latent scores or explanations "
                        "(no *.jsonl lines with a 'latent'); expected the output folder of "
                        "`psae interp`")
    return LatentScores(explanations=explanations, scores=scores)
