"""Expected values over HTTP from a server's level probabilities (/v1/systemone), against the
fake OpenAI-compatible server on 127.0.0.1; the real `transformers serve` is test_real_server's."""

from __future__ import annotations

import pytest

from progressive_sae.errors import PSAEError
from progressive_sae.interp.clients import TokenScorer, make_client
from progressive_sae.interp.clients.cache import CachedScorer
from progressive_sae.interp.clients.openai_http import OpenAIChatClient, RetryPolicy
from progressive_sae.interp.clients.systemone import MAX_QUESTIONS, QUESTION, SystemOneScorer
from tests.interp.clients.openai_server import OpenAIServer

FAST = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05)


def levels_by_length(body: dict) -> dict[str, list[float]]:
    """Each question's probabilities depend on its instructions' length (so that answers
    can be matched to parts): all mass on level len % n, where n is the number of levels."""
    out = {}
    for name, question in body["questions"].items():
        n = len(question["criteria"])
        probs = [0.0] * n
        probs[len(question.get("instructions", "")) % n] = 2.0  # unnormalised: the client divides
        out[name] = probs
    return out


def expected(parts: list[str], values: list[int]) -> list[float]:
    return [float(values[len(QUESTION + "".join(parts[:i + 1])) % len(values)])
            for i in range(len(parts))]


def test_a_server_with_probabilities_makes_the_client_a_token_scorer(tmp_path):
    with OpenAIServer(answer=lambda r: "ok", systemone=levels_by_length) as server:
        client = make_client("openai", url=server.url, model="m", retry=FAST,
                             cache_dir=tmp_path / "cache")
        assert isinstance(client, CachedScorer) and isinstance(client.inner, SystemOneScorer)
        assert isinstance(client, TokenScorer)
        hits_after_probe = server.hits
        parts = [f"tok{i}\t" if i == 0 else f"unknown\ntok{i}\t" for i in range(MAX_QUESTIONS + 6)]
        values = [0, 3, 10]
        messages = (("system", "Rate tokens."), ("user", "Text: …"))
        got = client.expected_values(messages, parts, values)
        assert got == expected(parts, values)
        assert server.hits - hits_after_probe == 2  # 70 questions: two requests of ≤ 64
        body = server.bodies[-1]
        assert body["model"] == "m" and body["state"] == "Rate tokens.\n\nText: …"
        assert {q["type"] for q in body["questions"].values()} == {"score"}
        assert client.expected_values(messages, parts, values) == got  # from the cache
        assert server.hits - hits_after_probe == 2
        assert client.stats.calls == 1 and client.stats.cache_hits == 1


def test_expected_values_retry_and_fail_as_runtime_errors():
    with OpenAIServer(answer=lambda r: "ok", systemone=levels_by_length,
                      faults=["500", "drop"]) as server:
        client = SystemOneScorer(server.url, "m", retry=FAST)
        assert client.expected_values((("user", "x"),), ["a"], [0, 1]) == expected(["a"], [0, 1])
        assert client.stats.retries == 2
    with OpenAIServer(answer=lambda r: "ok", systemone=levels_by_length, always="500") as server:
        client = SystemOneScorer(server.url, "m", retry=FAST)
        with pytest.raises(RuntimeError, match="HTTP 500.*after 4 attempts"):
            client.expected_values((("user", "x"),), ["a"], [0, 1])
        assert client.stats.failures == 1
        with pytest.raises(PSAEError, match="distinct"):
            client.expected_values((("user", "x"),), ["a"], [1, 1])


def test_a_server_without_probabilities_keeps_the_json_chat_client():
    with OpenAIServer(answer=lambda r: "ok") as server:
        client = make_client("openai", url=server.url, model="m", retry=FAST)
        assert type(client) is OpenAIChatClient and not isinstance(client, TokenScorer)
        assert server.hits == 0  # the probe's 404 is no chat request
    with OpenAIServer(answer=lambda r: "ok", systemone=levels_by_length) as server:
        client = make_client("openai", url=server.url, model="m", probabilities=False)
        assert type(client) is OpenAIChatClient and server.hits == 0
