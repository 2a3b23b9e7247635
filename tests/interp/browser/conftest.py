"""A small real setting for the browser tests: the offline LM's block-2 activations on a
short text (with a `<script>` in it), a random TopK SAE over them, and a page built by
`psae browse` with scores for a few latents."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from progressive_sae import SAEConfig, build_sae, save_sae

TEXT = ("def area(radius):\n    return 3.14159 * radius ** 2\n\n"
        "<script>alert(1)</script> is HTML, not Python.\n\n"
        "The cat sat on the mat. Ünïcödé text: naïve café ✓\n\n")
NUM_LATENTS = 40
EXPLAINED = {3: "cats and mats <b>not bold</b>", 7: "Python keywords such as def",
             11: "cats sitting"}
"""Latent → explanation written into the scores folder."""


@pytest.fixture(scope="session")
def lm():
    from progressive_sae.lm import load_lm

    return load_lm("offline-default")


@pytest.fixture(scope="session")
def setting(tmp_path_factory, lm) -> dict[str, Path]:
    from progressive_sae.cli import main
    from progressive_sae.lm.extract import extract
    from progressive_sae.lm.text import TextConfig

    root = tmp_path_factory.mktemp("browser")
    text = root / "text.txt"
    text.write_text(TEXT * 12)
    cache = root / "cache"
    with warnings.catch_warnings():  # the text runs out before max_tokens: intended
        warnings.simplefilter("ignore")
        extract(lm, TextConfig(source=str(text), ctx=48), "layers.2", cache, max_tokens=4096,
                dtype="float32", progress=False)
    sae = build_sae(SAEConfig(d_in=lm.d_model, num_latents=NUM_LATENTS, k=6))
    sae.reset_parameters(torch.Generator().manual_seed(1))
    save_sae(sae, root / "sae")
    scores = root / "interp"
    scores.mkdir()
    lines = [{"latent": j, "explanation": e, "simulation": 0.1 * j, "fuzzing": None}
             for j, e in EXPLAINED.items()]
    (scores / "scores.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    page = root / "page"
    assert main(["browse", str(root / "sae"), "--data", str(cache), "--out", str(page),
                 "--scores", str(scores), "--records", str(root / "records"), "--quiet"]) == 0
    return {"root": root, "cache": cache, "sae": root / "sae", "scores": scores,
            "page": page / "index.html", "records": root / "records"}
