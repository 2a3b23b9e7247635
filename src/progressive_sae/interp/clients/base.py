"""The one small interface every LLM backend implements.

A client answers chat requests (explanations, fuzzing/detection verdicts, JSON simulations).
In-process models also implement `TokenScorer`: Bills et al.'s "all at once" simulation reads
the expected value of a digit at many positions of ONE forward pass. Failures are answers
(`ChatAnswer.error`), never exceptions, so a scorer can record them; misconfiguration (an
unknown backend, an unreachable endpoint) raises PSAEError before any work starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Message = tuple[str, str]
"""(role, content), role one of 'system', 'user', 'assistant'."""


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to run."""

    messages: tuple[Message, ...]
    """The conversation so far."""
    max_tokens: int = 200
    """Upper bound on the answer's length in tokens."""
    temperature: float = 0.0
    """Sampling temperature; 0 = greedy (the default everywhere: results must be repeatable)."""
    json_answer: bool = False
    """Ask for a JSON object (response_format on OpenAI-compatible servers)."""
    completion: str | None = None
    """A raw prompt that in-process models continue as is, without the chat template, up
    to the end of its line (tiny models name things better when completing a text than when
    chatting); None = a chat. Clients that only chat send `messages` instead."""


@dataclass(frozen=True)
class ChatAnswer:
    """What came back for one request."""

    text: str | None
    """The answer; None when the call failed."""
    error: str | None = None
    """One line saying why the call failed (after any retries)."""
    cached: bool = False
    """True when the answer came from the on-disk response cache (no LLM call)."""

    @property
    def ok(self) -> bool:
        return self.text is not None


@runtime_checkable
class LLMClient(Protocol):
    """Anything that answers chat requests."""

    model_id: str
    """Identifies the model (and its quantisation); part of every response-cache key."""

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatAnswer]:
        """Answers in request order; a backend may run them concurrently or batched."""
        ...


@runtime_checkable
class TokenScorer(Protocol):
    """In-process models: expected digit values read from one forward pass."""

    model_id: str

    def expected_values(
        self, messages: Sequence[Message], assistant_parts: Sequence[str],
        values: Sequence[int],
    ) -> list[float]:
        """E[v] over the next-token distribution restricted to the tokens of `values`.

        The prompt is the chat template applied to `messages`, followed by an assistant turn
        made of `assistant_parts` concatenated; one expectation is returned after each part,
        all from ONE forward pass (so later parts condition on the text of earlier parts,
        never on the model's own predictions).
        """
        ...
