"""The feature browser: one self-contained HTML page per SAE (`psae browse`).

build (checks, records, LM) → payload (a JSON-able dict; its schema is in payload.py) →
page (inline CSS/JS with the payload embedded; works from file://).
"""

from progressive_sae.interp.browser.build import BrowseResult, build_browser
from progressive_sae.interp.browser.page import render_page, write_page
from progressive_sae.interp.browser.payload import LatentScores, PayloadConfig, build_payload
from progressive_sae.interp.browser.scores import read_scores

__all__ = [
    "BrowseResult",
    "LatentScores",
    "PayloadConfig",
    "build_browser",
    "build_payload",
    "read_scores",
    "render_page",
    "write_page",
]
