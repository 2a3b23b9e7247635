"""Fake LLM clients for the scorer tests: an oracle that knows every window's truth, a
constant one, one that always says "correct", and one that answers garbage."""

from __future__ import annotations

import json
import re

import numpy as np

from progressive_sae.interp.clients.base import ChatAnswer
from progressive_sae.interp.prompts import marked_text, scaled
from progressive_sae.interp.records import Window
from progressive_sae.interp.sampling import Bucket, LatentExamples


def text(token):
    return f" t{int(token)}"


def make_item(latent=0, fires_on=(1, 2), n_train=6, n_test=4, length=8, seed=0):
    """A latent that fires (value = token id) on tokens `fires_on`, with windows of random
    tokens in 0..9; activating windows hold at least one firing token."""
    rng = np.random.default_rng([seed, latent])

    def window(wid, active):
        tokens = rng.integers(3, 10, length)
        if active:
            tokens[rng.integers(0, length)] = rng.choice(fires_on)
        acts = np.where(np.isin(tokens, fires_on), tokens, 0).astype(np.float32)
        return Window(wid, wid, 0, tokens, acts)

    train = tuple(window(i, True) for i in range(n_train))
    test = tuple(window(100 + i, True) for i in range(n_test))
    quiet = tuple(window(200 + i, False) for i in range(n_test))
    return LatentExamples(latent, Bucket(0, 10), 0, 0.1, float(max(fires_on)), train, test,
                          quiet)


class Oracle:
    """Answers from the truth of the windows it was built with."""

    model_id = "oracle"

    def __init__(self, items):
        self.truth, self.correct, self.fires, self.calls = {}, set(), set(), 0
        for item in items:
            for w in item.test + item.nonactivating:
                self.truth[json.dumps([text(t) for t in w.tokens])] = scaled(
                    w.acts, item.max_act).tolist()
            for w in item.test:
                self.correct.add(marked_text(w.tokens, w.acts > 0, text))
                self.fires.add("".join(text(t) for t in w.tokens))

    def answer(self, request):
        user = request.messages[-1][1]
        if request.json_answer:
            listed = re.search(r"Tokens: (\[.*?\])\n", user).group(1)
            return json.dumps({"activations": self.truth[listed]})  # values, as asked
        if "Answer (1 or 0)" in user:
            shown = re.search(r"Text: (.*)\n\nAnswer", user, re.S).group(1)
            return "1" if shown in self.correct or shown in self.fires else "0"
        return "fires on t1 and t2"

    def chat(self, requests):
        self.calls += len(requests)
        return [ChatAnswer(self.answer(r)) for r in requests]


class Constant(Oracle):
    """Predicts 3 everywhere and says every window is correct."""

    model_id = "constant"

    def answer(self, request):
        if request.json_answer:
            tokens = json.loads(re.search(r"Tokens: (\[.*?\])\n",
                                          request.messages[-1][1]).group(1))
            return json.dumps({"activations": [[t, 3] for t in tokens]})
        return "1" if "Answer (1 or 0)" in request.messages[-1][1] else "anything"


class Garbage(Oracle):
    """Explains, then answers nothing readable; every fourth call fails outright."""

    model_id = "garbage"

    def chat(self, requests):
        out = []
        for r in requests:
            self.calls += 1
            if "Answer (1 or 0)" not in r.messages[-1][1] and not r.json_answer:
                out.append(ChatAnswer("some explanation"))
            elif self.calls % 4 == 0:
                out.append(ChatAnswer(None, error="HTTP 500 after 3 retries"))
            else:
                out.append(ChatAnswer("I think maybe {not json"))
        return out


class OnePassOracle(Oracle):
    """A TokenScorer: simulations and verdicts read as expected values."""

    model_id = "one-pass-oracle"

    def __init__(self, items):
        super().__init__(items)
        self.passes = 0
        self.by_text = {}
        for item in items:
            for w in item.test + item.nonactivating:
                self.by_text["".join(text(t) for t in w.tokens)] = scaled(
                    w.acts, item.max_act).tolist()

    def expected_values(self, messages, assistant_parts, values):
        self.passes += 1
        user = messages[-1][1]
        if tuple(values) == (0, 1):  # every window of the latent, one line each
            shown = re.findall(r"^Text \d+: (.*)$", user, re.M)
            assert len(shown) == len(assistant_parts)
            return [1.0 if s in self.correct or s in self.fires else 0.0 for s in shown]
        shown = re.search(r"Text: (.*)$", user, re.S).group(1)
        truth = self.by_text[shown]
        assert len(assistant_parts) == len(truth)
        return [float(v) for v in truth]
