"""Runs name their LM as the user named it, so they stay readable after a move; and every
command that reads activations takes a cache folder, a .npy file or a YAML config alike."""

import json
import shutil

import numpy as np
import pytest
import yaml

from progressive_sae.cli import main
from progressive_sae.config_files import data_source
from progressive_sae.data.cache import CachedActivations
from progressive_sae.data.source import NpySource
from progressive_sae.interp.prompts import load_tokenizer
from progressive_sae.lm.model import OFFLINE_DEFAULT, recorded_name
from progressive_sae.lm.offline import default_lm_available

pytestmark = pytest.mark.skipif(not default_lm_available(), reason="shipped LM missing")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A cache of the offline default LM and an SAE trained on it, as `psae` writes them."""
    root = tmp_path_factory.mktemp("run")
    config = root / "pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "lm": {"model": "offline-default"},
        "text": {"source": "cpython-docs", "ctx": 64, "part": "heldout"},
        "extract": {"hook": "layers.1", "out": str(root / "acts"), "max_tokens": 2048,
                    "dtype": "float32"},
        "data": {"cache": "acts"},
        "out": str(root / "sae-run"),
        "train": {"num_latents": 64, "k": 4, "batch_size": 256, "total_tokens": 1024},
    }))
    assert main(["extract", str(config)]) == 0
    assert main(["train", str(config)]) == 0
    return root


def test_the_manifest_names_the_lm_as_the_user_did(run_folder):
    manifest = json.loads((run_folder / "acts" / "manifest.json").read_text())
    assert manifest["model"] == OFFLINE_DEFAULT
    assert manifest["tokenizer"]["name"] == OFFLINE_DEFAULT
    assert "/" not in manifest["model"]


def test_a_moved_run_and_an_old_install_path_still_read(run_folder, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(run_folder, moved)
    shutil.rmtree(run_folder / "acts")  # the original is gone
    try:
        # A run made before this change named the shipped LM by its install path, inside
        # a checkout that has moved since.
        path = moved / "acts" / "manifest.json"
        manifest = json.loads(path.read_text())
        old = "/old/checkout/src/progressive_sae/lm/offline/default"
        manifest["model"], manifest["tokenizer"]["name"] = old, old
        path.write_text(json.dumps(manifest))
        assert recorded_name(old) == OFFLINE_DEFAULT
        tokenizer = load_tokenizer(manifest)
        assert tokenizer is not None and tokenizer.decode(tokenizer.encode(" import os"))
        assert main(["frontier", str(moved / "sae-run" / "sae"), "--data",
                     str(moved / "acts"), "--granularities", "16,64", "--out",
                     str(tmp_path / "frontier")]) == 0
        assert main(["browse", str(moved / "sae-run" / "sae"), "--data", str(moved / "acts"),
                     "--out", str(tmp_path / "page"), "--latents", "4"]) == 0
    finally:
        shutil.copytree(moved / "acts", run_folder / "acts")


def test_every_spelling_of_the_same_activations_reads_the_same_rows(run_folder, tmp_path):
    folder = run_folder / "acts"
    rows = CachedActivations(folder, shuffle_buffer=0).rows(0, 100).numpy()
    np.save(tmp_path / "acts.npy", rows)
    config = tmp_path / "data.yaml"
    config.write_text(yaml.safe_dump({"data": {"cache": str(folder)}}))
    for spec in (folder, str(folder), config):
        source = data_source(spec, text_order=True)
        assert isinstance(source, CachedActivations)
        assert np.array_equal(source.rows(0, 100).numpy(), rows)
    assert isinstance(data_source(tmp_path / "acts.npy"), NpySource)
    for command in (["frontier"], ["interp", "--llm", "baseline"]):
        for data in (folder, config):
            args = [*command, str(run_folder / "sae-run" / "sae"), "--data", str(data),
                    "--out", str(tmp_path / f"{command[0]}-{data.name}")]
            if command[0] == "frontier":
                args += ["--granularities", "16,64"]
            else:
                args += ["--latents-per-quantile", "1", "--quantiles", "1"]
            assert main(args) == 0, args
