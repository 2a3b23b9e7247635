"""The on-disk response cache: keys, zero calls on a second run, failures asked again."""

from __future__ import annotations

import json

from progressive_sae.interp.clients import ChatAnswer, ChatRequest, ClientStats, TokenScorer
from progressive_sae.interp.clients.cache import CachedScorer, request_key, with_cache


class Counting:
    """A chat client that answers the user's text reversed; fails when asked to."""

    def __init__(self, model_id: str = "echo", fail: str = "FAIL") -> None:
        self.model_id = model_id
        self.fail = fail
        self.stats = ClientStats()
        self.asked: list[ChatRequest] = []

    def chat(self, requests):
        self.asked.extend(requests)
        self.stats.calls += len(requests)
        out = []
        for r in requests:
            text = r.messages[-1][1]
            out.append(ChatAnswer(None, error="boom") if self.fail in text
                       else ChatAnswer(text[::-1]))
        self.stats.failures += sum(not a.ok for a in out)
        return out


class Scoring(Counting):
    def __init__(self) -> None:
        super().__init__("scorer")
        self.passes = 0

    def expected_values(self, messages, assistant_parts, values):
        self.passes += 1
        return [len(p) / 3 for p in assistant_parts]


def req(text: str, **kw) -> ChatRequest:
    return ChatRequest((("user", text),), **kw)


def test_second_run_makes_no_call_and_failures_are_asked_again(tmp_path):
    requests = [req("abc"), req("FAIL once"), req("xyz")]
    first = with_cache(Counting(), tmp_path)
    answers = first.chat(requests)
    assert [a.text for a in answers] == ["cba", None, "zyx"]
    assert first.stats.calls == 3 and first.stats.failures == 1

    inner = Counting(fail="never")  # the failure has gone away
    second = with_cache(inner, tmp_path)
    again = second.chat(requests)
    assert inner.asked == [requests[1]]
    assert [a.text for a in again] == ["cba", "ecno LIAF", "zyx"]
    assert [a.cached for a in again] == [True, False, True]
    assert second.stats.to_dict() == {"calls": 1, "cache_hits": 2, "failures": 0, "retries": 0}

    third_inner = Counting()
    third = with_cache(third_inner, tmp_path)
    assert [a.text for a in third.chat(requests)] == [a.text for a in again]
    assert third_inner.asked == [] and third.stats.cache_hits == 3


def test_keys_cover_model_messages_and_parameters(tmp_path):
    base = req("abc")
    keys = {
        request_key("echo", "chat", {"m": base.messages, "max_tokens": 5}),
        request_key("other", "chat", {"m": base.messages, "max_tokens": 5}),
        request_key("echo", "chat", {"m": base.messages, "max_tokens": 6}),
        request_key("echo", "expected_values", {"m": base.messages, "max_tokens": 5}),
    }
    assert len(keys) == 4
    client = with_cache(Counting(), tmp_path)
    variants = [base, req("abc", max_tokens=7), req("abc", temperature=0.5),
                req("abc", json_answer=True), ChatRequest((("system", "abc"),))]
    client.chat(variants)
    assert client.stats.calls == 5
    other_model = with_cache(Counting(model_id="echo-2"), tmp_path)
    other_model.chat([base])
    assert other_model.stats.calls == 1 and other_model.stats.cache_hits == 0


def test_entries_are_readable_json_and_a_damaged_one_is_asked_again(tmp_path):
    client = with_cache(Counting(), tmp_path)
    client.chat([req("abc")])
    (entry,) = [p for p in tmp_path.rglob("*.json")]
    data = json.loads(entry.read_text())
    assert data["answer"] == "cba" and data["model"] == "echo"
    assert entry.parent.name == entry.stem[:2]
    assert not [p for p in tmp_path.rglob("*.tmp")]
    entry.write_text('{"key": "trunc')
    again = with_cache(Counting(), tmp_path)
    assert again.chat([req("abc")])[0].text == "cba" and again.stats.calls == 1


def test_expected_values_are_cached_for_scorers_only(tmp_path):
    assert not isinstance(with_cache(Counting(), tmp_path), TokenScorer)
    inner = Scoring()
    client = with_cache(inner, tmp_path)
    assert isinstance(client, CachedScorer) and isinstance(client, TokenScorer)
    messages, parts = (("user", "x"),), ["a\t", "unknown\nbb\t"]
    first = client.expected_values(messages, parts, range(11))
    again = with_cache(Scoring(), tmp_path)
    assert again.expected_values(messages, parts, range(11)) == first
    assert again.inner.passes == 0 and again.stats.cache_hits == 1
    assert again.expected_values(messages, parts, range(10)) == first  # other values: asked
    assert again.inner.passes == 1
