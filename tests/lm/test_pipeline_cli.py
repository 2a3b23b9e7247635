"""`psae extract` then `psae train` end to end on a tiny local GPT-2, with no network."""

import json

import pytest
import torch
import yaml
from transformers import GPT2Config, GPT2LMHeadModel

from progressive_sae import load_sae
from progressive_sae.cli import main
from progressive_sae.data.cache import CachedActivations
from tests.lm.toy_text import BOS, EOS, PAD, doc, toy_tokenizer


@pytest.fixture
def tiny_gpt2(tmp_path):
    torch.manual_seed(0)
    tokenizer = toy_tokenizer()
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=24, n_layer=2,
                        n_head=2, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    folder = tmp_path / "model"
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_extract_then_train_on_the_cache(tmp_path, tiny_gpt2, capsys):
    text = tmp_path / "docs.txt"
    text.write_text("\n\n".join(doc(i, 30 + i) for i in range(40)))
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "lm": {"model": str(tiny_gpt2)},
        "text": {"source": str(text), "ctx": 32},
        "extract": {"hook": "layers.1", "out": str(tmp_path / "cache"), "max_tokens": 1024,
                    "dtype": "float32"},
        "data": {"cache": str(tmp_path / "cache")},
        "out": str(tmp_path / "run"),
        "train": {"num_latents": 48, "k": 4, "batch_size": 128, "total_tokens": 1024},
    }))
    assert main(["extract", str(config)]) == 0
    cache = CachedActivations(tmp_path / "cache")
    assert cache.d_in == 24 and len(cache) >= 900  # BOS positions are excluded
    assert main(["train", str(config)]) == 0
    result = json.loads(capsys.readouterr().out.split("activation cache:")[-1].split("\n", 1)[1])
    assert result["steps"] == 8
    assert load_sae(tmp_path / "run" / "sae").d_in == 24


def test_extract_reports_bad_hooks_and_sources_in_one_line(tmp_path, tiny_gpt2, capsys):
    text = tmp_path / "docs.txt"
    text.write_text(doc(0, 50))
    base = ["extract", "--model", str(tiny_gpt2), "--out", str(tmp_path / "c"),
            "--max-tokens", "100"]
    cases = [
        (["--hook", "layers.7", "--text", str(text)], "layers.7"),
        (["--hook", "resid", "--text", str(text)], "resid"),
        (["--hook", "layers.0", "--text", str(tmp_path / "missing.txt")], "missing.txt"),
    ]
    for extra, named in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("psae: error:") and named in err[0], err


def _one_error_line(capsys, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("psae: error:"), err
    for word in words:
        assert word in err[0], err
    assert "Traceback" not in err[0]


def test_issue_bad_inputs_exit_2_with_one_line(tmp_path, tiny_gpt2, capsys):
    from progressive_sae import SAEConfig, build_sae, save_sae

    base = ["extract", "--model", str(tiny_gpt2), "--hook", "layers.1", "--max-tokens", "600"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n")
    assert main(base + ["--text", str(empty), "--out", str(tmp_path / "c0")]) == 2
    _one_error_line(capsys, "empty.txt")

    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"body": "w1 w2 w3"}\n')
    config = tmp_path / "col.yaml"
    config.write_text(yaml.safe_dump({"text": {"source": str(jsonl), "text_column": "text"}}))
    assert main(["extract", str(config), "--model", str(tiny_gpt2), "--hook", "layers.0",
                 "--out", str(tmp_path / "c1"), "--max-tokens", "100"]) == 2
    _one_error_line(capsys, "text")

    text = tmp_path / "docs.txt"
    text.write_text("\n\n".join(doc(i, 40) for i in range(30)))
    cache = tmp_path / "cache"
    assert main(base + ["--text", str(text), "--out", str(cache), "--ctx", "32",
                        "--dtype", "float32"]) == 0
    capsys.readouterr()
    data_yaml = tmp_path / "data.yaml"
    data_yaml.write_text(yaml.safe_dump({"data": {"cache": str(cache)}}))
    wrong = save_sae(build_sae(SAEConfig(d_in=16, num_latents=32, k=4)), tmp_path / "sae16")
    assert main(["permute", str(wrong), "--data", str(data_yaml),
                 "--out", str(tmp_path / "p")]) == 2
    _one_error_line(capsys, "d_in=16")

    shard = sorted(cache.glob("acts_*.npy"))[0]
    raw = bytearray(shard.read_bytes())
    raw[-5] ^= 0xFF
    shard.write_bytes(bytes(raw))
    assert main(["train", "--data", str(data_yaml), "--out", str(tmp_path / "run"),
                 "--num-latents", "32", "--k", "4", "--batch-size", "64",
                 "--total-tokens", "128"]) == 2
    _one_error_line(capsys, shard.name)
