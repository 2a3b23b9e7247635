"""The offline default explainer names the token a latent fires on.

Latents are planted on a real activation cache: the shipped offline LM's block-2 activations
on the offline corpus, whose token ids a one-hot cache copies (latent j > 0 exactly where the
token is planted token j, scaled by the real activation's norm so strengths vary); an
identity TopK SAE reads it through the real records, sampling and `LLMInterpreter.explain`
with SmolLM2-135M (no fakes).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch

from progressive_sae.data.cache.reader import CachedActivations
from progressive_sae.errors import PSAEError
from progressive_sae.interp.clients import ChatRequest
from progressive_sae.interp.clients.cache import chat_payload, request_key, with_cache
from progressive_sae.interp.collect import collect_records
from progressive_sae.interp.config import InterpConfig, RecordsConfig, SamplingConfig
from progressive_sae.interp.explainer import LLMInterpreter, resolve_prompt
from progressive_sae.interp.planted import names, plant_token_latents
from progressive_sae.interp.prompts import (
    COMPLETION_PREFIX,
    clean_completion,
    explain_completion,
    load_tokenizer,
    token_text_from,
)
from progressive_sae.interp.sampling import Bucket, LatentExamples, draw_examples

PLANTED = (" can", " to", " method", " return", " if", " list", " class", ":", ",", "(")
"""Words and punctuation frequent enough in the first 32k tokens of the offline corpus."""


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """SmolLM2's small matmuls gain little from a second thread on shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[list[LatentExamples], list[int], object]:
    """The planted latents' examples, their token ids and the token → text function."""
    from progressive_sae.lm import load_lm
    from progressive_sae.lm.extract import extract
    from progressive_sae.lm.text import OFFLINE_CORPUS, TextConfig

    root = tmp_path_factory.mktemp("planted")
    lm = load_lm("offline-default")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extract(lm, TextConfig(source=OFFLINE_CORPUS, ctx=64), "layers.2", root / "real",
                max_tokens=32768, dtype="float32", progress=False)
    real = CachedActivations(root / "real", shuffle_buffer=0)
    ids = [lm.tokenizer.encode(w, add_special_tokens=False) for w in PLANTED]
    assert all(len(i) == 1 for i in ids), ids
    ids = [i[0] for i in ids]
    sae = plant_token_latents(real, ids, root / "planted")
    n = len(ids)
    records = collect_records(sae, root / "planted", RecordsConfig(), out=root / "records")
    sampling = SamplingConfig(train_examples=20, test_examples=4)
    items = [draw_examples(records, j, 0, Bucket(0, n + 1), sampling) for j in range(n)]
    assert all(isinstance(item, LatentExamples) for item in items), items
    for item, token in zip(items, ids):  # planted exactly: fires on its token, only there
        for window in item.train:
            assert np.array_equal(window.acts > 0, window.tokens == token)
    return items, ids, token_text_from(load_tokenizer(records.meta))


def test_offline_default_names_planted_tokens(planted):
    from progressive_sae.interp.clients.offline import load_offline_default

    items, _, text = planted
    interpreter = LLMInterpreter(load_offline_default("cpu"), text, explanation_tokens=24)
    assert interpreter.prompt == "completion"  # what 'auto' gives the offline default
    explanations = interpreter.explain(items)
    named = [isinstance(e, str) and names(e, w) for e, w in zip(explanations, PLANTED)]
    assert sum(named) >= 0.6 * len(PLANTED), list(zip(PLANTED, explanations))


def test_completion_prompt_lists_the_tokens_and_ends_in_the_prefix(planted):
    items, ids, text = planted
    windows = [(w.tokens, np.rint(10 * w.acts / items[2].max_act).astype(int))
               for w in items[2].train]
    request = explain_completion(windows, text, 24)
    assert request.completion is not None
    assert request.completion.endswith(f"Explanation: {COMPLETION_PREFIX}")
    assert re.search(r'Tokens it fires on most \(count, mean activation 0-10\): '
                     r'"method" \(\d+, ([1-9]|10)\)\n', request.completion)
    assert "<< method>>" in request.completion
    # chat-only clients get the same text, asked to start with the prefix
    assert request.messages[-1][1].endswith(COMPLETION_PREFIX)


@pytest.mark.parametrize("answer, explanation", [
    ('can"', 'fires on the token "can"'),
    ('to" (25)', 'fires on the token "to"'),
    ('is" in the token "is_object"', 'fires on the token "is"'),
    ('(".', 'fires on the token "("'),
    (']" and ")"', 'fires on the token "]" and ")"'),
    ('Explanation: fires on the token "x", "y" or "z" here', 'fires on the token "x", "y" or "z"'),
    ("The feature fires on \"can\" in questions", "The feature fires on \"can\" in questions"),
    ('"', None),
    ("", None),
])
def test_clean_completion(answer, explanation):
    assert clean_completion(answer) == explanation


class _Client:
    model_id = "fake"

    def __init__(self, tiny: bool | None = None) -> None:
        if tiny is not None:
            self.tiny = tiny

    def chat(self, requests):
        return []


def test_prompt_style_setting(tmp_path):
    assert resolve_prompt("auto", _Client(tiny=True)) == "completion"
    assert resolve_prompt("auto", _Client(tiny=False)) == "chat"
    assert resolve_prompt("auto", _Client()) == "chat"  # e.g. an HTTP server
    assert resolve_prompt("completion", _Client()) == "completion"
    assert resolve_prompt("chat", _Client(tiny=True)) == "chat"
    assert resolve_prompt("auto", with_cache(_Client(tiny=True), tmp_path)) == "completion"
    assert InterpConfig.from_dict({"llm": {"prompt": "chat"}}).llm.prompt == "chat"
    with pytest.raises(PSAEError, match="llm.prompt='tiny'"):
        InterpConfig.from_dict({"llm": {"prompt": "tiny"}})
    with pytest.raises(PSAEError, match="llm.prompt"):
        resolve_prompt("fast", _Client())


def test_cache_keys_include_the_completion_prompt():
    chat = ChatRequest(messages=(("user", "hi"),), max_tokens=8)
    raw = ChatRequest(messages=(("user", "hi"),), max_tokens=8, completion='hi "')
    other = ChatRequest(messages=(("user", "hi"),), max_tokens=8, completion='ho "')
    keys = {request_key("m", "chat", chat_payload(r)) for r in (chat, raw, other)}
    assert len(keys) == 3
    assert "completion" not in chat_payload(chat)  # chat requests keep their old keys


def test_in_process_models_continue_a_raw_completion_up_to_its_line_end():
    from progressive_sae.interp.clients.offline import load_offline_default

    client = load_offline_default("cpu")
    counting = ChatRequest(messages=(("user", "Count on."),), max_tokens=16,
                           completion="One, two, three, four,")
    chat = ChatRequest(messages=(("user", "Say hello."),), max_tokens=8)
    first, second = client.chat([counting, chat])
    assert first.ok and second.ok and second.text
    # continued as text (no chat template: no assistant turn opening), one line only
    assert first.text.lower().startswith("five") and "\n" not in first.text
    assert client.tiny
