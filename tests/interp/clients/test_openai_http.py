"""The HTTP client against a real OpenAI-compatible server on 127.0.0.1 answering from SmolLM2."""

from __future__ import annotations

import asyncio
import email.message
import email.utils
import socket
import time

import pytest

from progressive_sae.interp.clients import ChatRequest, make_client
from progressive_sae.interp.clients.openai_http import OpenAIChatClient, RetryPolicy, _retry_after
from tests.helpers import one_line_error
from tests.interp.clients.openai_server import OpenAIServer

REQUESTS = [
    ChatRequest((("user", "Name one fruit."),), max_tokens=4),
    ChatRequest((("system", "Answer in JSON."), ("user", 'Give {"colour": a colour}.')),
                max_tokens=4, json_answer=True),
]


@pytest.fixture(scope="module")
def direct(smollm2):
    """What the model answers to REQUESTS without HTTP in between (one at a time, as the
    server asks it)."""
    return [smollm2.chat([r])[0].text for r in REQUESTS]


class Sleeps:
    """Records backoff waits instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client_for(server: OpenAIServer, retries: int = 3, **kw) -> tuple[OpenAIChatClient, Sleeps]:
    sleeps = Sleeps()
    policy = RetryPolicy(max_retries=retries, base_delay=0.01, max_delay=5.0, seed=1)
    return OpenAIChatClient(server.url, "smollm2", retry=policy, sleep=sleeps, **kw), sleeps


def test_answers_come_from_the_model_behind_the_server(smollm2, direct, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-secret-123")
    with OpenAIServer(smollm2) as server:
        client = make_client("openai", url=server.url, model="smollm2",
                             api_key_env="TEST_LLM_KEY")
        answers = client.chat(REQUESTS)
    assert [a.text for a in answers] == direct
    assert all(a.ok and not a.cached for a in answers)
    assert server.hits == 2
    # The two requests go out concurrently: match each body to its request by its last message.
    by_prompt = {body["messages"][-1]["content"]: body for body in server.bodies}
    assert "response_format" not in by_prompt["Name one fruit."]
    assert by_prompt['Give {"colour": a colour}.']["response_format"] == {"type": "json_object"}
    assert server.authorizations == ["Bearer sk-secret-123"] * 2
    assert "sk-secret" not in repr(client) and "sk-secret" not in client.model_id
    assert client.stats.to_dict() == {"calls": 2, "cache_hits": 0, "failures": 0, "retries": 0}


def test_a_429_is_retried_after_its_retry_after(smollm2, direct):
    with OpenAIServer(smollm2, faults=["429"], retry_after="2") as server:
        client, sleeps = client_for(server)
        (answer,) = client.chat(REQUESTS[:1])
    assert answer.ok and answer.text == direct[0]
    assert server.hits == 2
    assert len(sleeps.delays) == 1 and 2.0 <= sleeps.delays[0] <= 5.0
    assert client.stats.retries == 1 and client.stats.failures == 0


def test_a_dropped_connection_is_retried(smollm2):
    with OpenAIServer(smollm2, faults=["drop", "500"]) as server:
        client, sleeps = client_for(server)
        (answer,) = client.chat(REQUESTS[:1])
    assert answer.ok
    assert server.hits == 3 and client.stats.retries == 2
    # exponential backoff with jitter in [1, 1.25]: 0.01·[1, 1.25], then 0.02·[1, 1.25]
    assert 0.01 <= sleeps.delays[0] <= 0.0125 and 0.02 <= sleeps.delays[1] <= 0.025


def test_a_server_that_always_fails_gives_a_recorded_failure():
    with OpenAIServer(answer=lambda r: "never used", always="500") as server:
        client, sleeps = client_for(server, retries=2)
        answers = client.chat(REQUESTS)
    assert [a.ok for a in answers] == [False, False]
    for answer in answers:
        assert "HTTP 500" in answer.error and "after 3 attempts" in answer.error
        assert "\n" not in answer.error
    assert server.hits == 6 and len(sleeps.delays) == 4
    assert client.stats.failures == 2 and client.stats.calls == 2


def test_malformed_json_is_a_recorded_failure_without_retries(smollm2):
    with OpenAIServer(smollm2, faults=["malformed"]) as server:
        client, sleeps = client_for(server)
        answers = client.chat(REQUESTS[:1])
    assert not answers[0].ok and "malformed response body" in answers[0].error
    assert server.hits == 1 and sleeps.delays == []
    assert client.stats.failures == 1


def test_a_second_run_through_the_cache_makes_no_call(smollm2, tmp_path):
    requests = [*REQUESTS, ChatRequest((("user", "Say hi."),), max_tokens=3)]
    with OpenAIServer(smollm2, faults=[None, "malformed"]) as server:
        first = make_client("openai", url=server.url, model="smollm2", cache_dir=tmp_path,
                            concurrency=1)  # requests reach the server in order
        answers = first.chat(requests)
        # the server answered the first request, garbled the second, answered the third
        assert [a.ok for a in answers] == [True, False, True] and server.hits == 3
        second = make_client("openai", url=server.url, model="smollm2", cache_dir=tmp_path)
        again = second.chat(requests)
        # failures are not cached: only the garbled one is asked again
        assert server.hits == 4 and second.stats.calls == 1
        assert [a.cached for a in again] == [True, False, True]
        third = make_client("openai", url=server.url, model="smollm2", cache_dir=tmp_path)
        last = third.chat(requests)
    assert server.hits == 4
    assert third.stats.to_dict() == {"calls": 0, "cache_hits": 3, "failures": 0, "retries": 0}
    assert [a.text for a in last] == [a.text for a in again]
    assert all(a.cached for a in last)


def test_concurrency_is_limited():
    # 12: more than asyncio's default thread pool on 2 cores; the server holds each request
    # long enough for all of a round to arrive even on a busy machine
    for concurrency, n, delay in ((2, 6, 0.3), (12, 14, 1.0)):
        with OpenAIServer(answer=lambda r: "ok", delay=delay) as server:
            client, _ = client_for(server, concurrency=concurrency)
            answers = client.chat([REQUESTS[0]] * n)
        assert [a.text for a in answers] == ["ok"] * n
        assert server.max_in_flight == concurrency


def test_chat_works_inside_a_running_event_loop():
    with OpenAIServer(answer=lambda r: r.messages[-1][1].upper()) as server:
        client, _ = client_for(server)

        async def caller():
            return client.chat(REQUESTS[:1])

        (answer,) = asyncio.run(caller())
    assert answer.text == "NAME ONE FRUIT."


def test_an_unreachable_endpoint_names_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    one_line_error(lambda: make_client("openai", url=url, model="m"), url, "unreachable")
    one_line_error(lambda: make_client("openai", url="ftp://x", model="m"), "ftp://x")
    one_line_error(lambda: make_client("openai", model="m"), "url")


def test_retry_after_in_seconds_or_as_a_date():
    def headers(value):
        message = email.message.Message()
        if value is not None:
            message["Retry-After"] = value
        return message

    assert _retry_after(headers("3")) == 3.0
    assert _retry_after(headers(None)) is None and _retry_after(headers("soon")) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= _retry_after(headers(later)) <= 31
