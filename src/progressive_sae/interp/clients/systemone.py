"""Expected values through a server that returns probabilities: `transformers serve`'s
/v1/systemone.

OpenAI-compatible servers that return logprobs would let simulation read its expected values
from one pass; `transformers serve` (5.25) ignores `logprobs`, `top_logprobs` and `echo` on
both /v1/chat/completions and /v1/completions. It does answer typed "score" questions on
/v1/systemone with a probability per level, from a forward pass and no generated token. So
over such a server the chat client is also a `TokenScorer`: the conversation is the question's
state, and after each assistant part a score question asks which of `values` comes next
(its levels listed as the values' text; the server reads the logits of the level labels A, B,
… after its own generic prompt). E[value] = Σ value · P(level). It is one forward pass per
part on the server (no shared prefix), never a generated token and never an unreadable
answer. `probe` asks once whether the server has the endpoint; without it the client stays a
plain chat client (JSON simulation).
"""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import Sequence
from typing import Any

from progressive_sae.errors import PSAEError
from progressive_sae.interp.clients.base import Message
from progressive_sae.interp.clients.openai_http import (
    OpenAIChatClient,
    RequestFailed,
    response_json,
)

PATH = "/systemone"
MAX_QUESTIONS = 64
"""Questions per request that the server accepts (its request schema's limit)."""
QUESTION = "Continue this answer with the value that comes next:\n"


class SystemOneScorer(OpenAIChatClient):
    """An OpenAI-compatible chat client whose server also answers /v1/systemone: a
    `TokenScorer` (expected values from the server's level probabilities)."""

    def __repr__(self) -> str:
        return f"SystemOneScorer(url={self.url!r}, model={self.model!r})"

    def expected_values(
        self, messages: Sequence[Message], assistant_parts: Sequence[str],
        values: Sequence[int],
    ) -> list[float]:
        """E[v] after each part; RequestFailed (a RuntimeError) when the server fails for good."""
        values = [int(v) for v in values]
        if not values or len(set(values)) != len(values):
            raise PSAEError(f"values={values!r}: expected distinct integers, at least one")
        if not assistant_parts:
            return []
        state = "\n\n".join(content for _, content in messages)
        questions = [{"type": "score", "instructions": QUESTION + "".join(assistant_parts[:i + 1]),
                      "criteria": [str(v) for v in values]}
                     for i in range(len(assistant_parts))]
        chunks = [questions[i:i + MAX_QUESTIONS] for i in range(0, len(questions), MAX_QUESTIONS)]
        self.stats.calls += 1
        try:
            answers = self.run(self._ask(state, chunks, len(values)))
        except RequestFailed:
            self.stats.failures += 1
            raise
        return [sum(v * p for v, p in zip(values, probs)) for chunk in answers for probs in chunk]

    async def _ask(self, state: str, chunks: list[list[dict[str, Any]]], levels: int
                   ) -> list[list[list[float]]]:
        gate = asyncio.Semaphore(self.concurrency)
        pool = self.pool()

        def read(status: int, headers: http.client.HTTPMessage, raw: bytes
                 ) -> list[list[float]]:
            answers = response_json(status, headers, raw)["answers"]
            out = []
            for i in range(len(answers)):
                probs = answers[f"q{i}"]["probabilities"]
                row = [float(probs[str(level)]) for level in range(levels)]
                total = sum(row)
                if not total > 0:
                    raise ValueError(f"level probabilities sum to {total}")
                out.append([p / total for p in row])
            return out

        async def one(chunk: list[dict[str, Any]]) -> list[list[float]]:
            payload = {"model": self.model, "state": state,
                       "questions": {f"q{i}": q for i, q in enumerate(chunk)}}
            async with gate:
                rows = await self.request(PATH, payload, read, pool)
            if len(rows) != len(chunk):
                raise RequestFailed(f"{self.url}{PATH}: {len(rows)} answers to "
                                    f"{len(chunk)} questions")
            return rows

        try:
            return list(await asyncio.gather(*(one(c) for c in chunks)))
        finally:
            pool.shutdown(wait=False)


def probe(client: OpenAIChatClient) -> bool:
    """Whether the server answers a one-question /v1/systemone request (one tiny forward pass);
    any failure (404 on other servers, a validation error, a time-out) means no."""
    payload = {"model": client.model, "state": "probe",
               "questions": {"q0": {"type": "score", "criteria": ["0", "1"]}}}

    def read(status: int, headers: http.client.HTTPMessage, raw: bytes) -> bool:
        probs = response_json(status, headers, raw)["answers"]["q0"]["probabilities"]
        return set(probs) == {"0", "1"}

    async def ask() -> bool:
        pool = client.pool()
        try:
            return await client.request(PATH, payload, read, pool)
        finally:
            pool.shutdown(wait=False)

    try:
        return client.run(ask())
    except RequestFailed:
        return False
