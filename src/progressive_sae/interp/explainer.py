"""Interpreters: what explains latents and answers the scorers' questions.

An `Interpreter` explains latents from their train windows, predicts per-token activations
from an explanation (simulation) and answers whether shown windows fit it (fuzzing,
detection). `LLMInterpreter` does it with any `LLMClient` (and, for in-process models that
are also `TokenScorer`s, reads a simulation off one forward pass per window and all fuzzing or
detection verdicts of a latent off one forward pass);
`baseline.BaselineInterpreter` does it with a look-up table and no LLM. Each method takes
all latents at once so a client can batch or run requests concurrently. Failed or
unreadable answers come back as `Failure`s, never as numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from progressive_sae.errors import PSAEError, first_line
from progressive_sae.interp.clients.base import ChatAnswer, LLMClient, TokenScorer
from progressive_sae.interp.config import LLM_PROMPTS
from progressive_sae.interp.prompts import (
    TokenText,
    all_at_once_prompt,
    clean_completion,
    clean_explanation,
    explain_completion,
    explain_request,
    parse_simulation,
    parse_verdict,
    scaled,
    simulation_request,
    verdict_request,
    verdicts_prompt,
)
from progressive_sae.interp.records import Window
from progressive_sae.interp.sampling import LatentExamples
from progressive_sae.interp.scorers.common import Failure
from progressive_sae.interp.scorers.fuzzing import Shown

SIMULATION_VALUES = tuple(range(11))


def resolve_prompt(prompt: str, client: LLMClient) -> str:
    """'completion' or 'chat' for `client`: 'auto' follows the client's `tiny` flag (an
    in-process model under a billion parameters, e.g. the offline default; HTTP servers
    have none and chat)."""
    if prompt not in LLM_PROMPTS:
        raise PSAEError(f"llm.prompt={prompt!r}: expected one of {LLM_PROMPTS}")
    if prompt == "auto":
        return "completion" if getattr(client, "tiny", False) else "chat"
    return prompt


class Interpreter(Protocol):
    """Explains latents and answers the scorers (an LLM, or the LLM-free baseline)."""

    label: str
    """'baseline', or 'llm:<model id>'."""
    uses_llm: bool
    """Whether it calls an LLM (then an explanation costs one call)."""

    def cost(self, method: str, windows: int) -> int:
        """LLM calls a method makes for one latent scored on `windows` windows."""
        ...

    def explain(self, items: Sequence[LatentExamples]) -> list[str | Failure]:
        """One short explanation per latent, from its train windows."""
        ...

    def simulate(self, items: Sequence[LatentExamples], explanations: Sequence[str],
                 windows: Sequence[Sequence[Window]]) -> list[list[list[float] | Failure]]:
        """Per latent, per window: a predicted activation 0–10 per token."""
        ...

    def judge(self, items: Sequence[LatentExamples], explanations: Sequence[str],
              shown: Sequence[Sequence[Shown]]) -> list[list[bool | Failure]]:
        """Per latent, per shown window: does it fit the explanation?"""
        ...


def _failure(answer: ChatAnswer, window: int | None, error: str) -> Failure:
    text = answer.text[:500] if answer.text is not None else None
    return Failure(window, answer.error or error, text)


def _split(flat: list, sizes: Sequence[int]) -> list[list]:
    out, start = [], 0
    for size in sizes:
        out.append(flat[start:start + size])
        start += size
    return out


class LLMInterpreter:
    """An `Interpreter` backed by an LLM client."""

    uses_llm = True

    def __init__(self, client: LLMClient, text: TokenText, explanation_tokens: int = 48,
                 prompt: str = "auto") -> None:
        self.client, self.text = client, text
        self.explanation_tokens = explanation_tokens
        self.prompt = resolve_prompt(prompt, client)
        self.label = f"llm:{client.model_id}"
        self.one_pass = isinstance(client, TokenScorer)

    def cost(self, method: str, windows: int) -> int:
        return 1 if self.one_pass and method != "simulation" else windows

    def explain(self, items: Sequence[LatentExamples]) -> list[str | Failure]:
        build, clean = ((explain_completion, clean_completion) if self.prompt == "completion"
                        else (explain_request, clean_explanation))
        requests = [build([(w.tokens, scaled(w.acts, item.max_act)) for w in item.train],
                          self.text, self.explanation_tokens) for item in items]
        out: list[str | Failure] = []
        for answer in self.client.chat(requests):
            line = clean(answer.text) if answer.ok else None
            out.append(line if line else _failure(answer, None, "empty explanation"))
        return out

    def simulate(self, items: Sequence[LatentExamples], explanations: Sequence[str],
                 windows: Sequence[Sequence[Window]]) -> list[list[list[float] | Failure]]:
        jobs = [(e, w) for e, ws in zip(explanations, windows) for w in ws]
        if self.one_pass:
            flat = [self._expected(e, w.tokens) for e, w in jobs]
        else:
            answers = self.client.chat([simulation_request(e, w.tokens, self.text)
                                        for e, w in jobs])
            flat = []
            for answer, (_, w) in zip(answers, jobs):
                values = parse_simulation(answer.text, len(w.tokens)) if answer.ok else None
                flat.append(values if values is not None else _failure(
                    answer, None, f"unreadable simulation (expected {len(w.tokens)} "
                    "[token, value] pairs in JSON)"))
        return [_number_windows(ws) for ws in _split(flat, [len(ws) for ws in windows])]

    def _verdicts_one_pass(self, explanation: str, shown: Sequence[Shown]
                           ) -> list[bool | Failure]:
        """All of a latent's windows in one prompt, P("1") read per window in one pass."""
        messages, parts = verdicts_prompt(explanation, [(s.tokens, s.marks) for s in shown],
                                          self.text)
        try:
            p_yes = self.client.expected_values(messages, parts, (0, 1))
        except (RuntimeError, ValueError) as err:
            return [Failure(i, first_line(err)) for i in range(len(shown))]
        return [bool(p >= 0.5) for p in p_yes]

    def _expected(self, explanation: str, tokens: np.ndarray) -> list[float] | Failure:
        messages, parts = all_at_once_prompt(explanation, tokens, self.text)
        try:
            return list(self.client.expected_values(messages, parts, SIMULATION_VALUES))
        except (RuntimeError, ValueError) as err:
            return Failure(None, first_line(err))

    def judge(self, items: Sequence[LatentExamples], explanations: Sequence[str],
              shown: Sequence[Sequence[Shown]]) -> list[list[bool | Failure]]:
        if self.one_pass:
            return [self._verdicts_one_pass(e, ss) for e, ss in zip(explanations, shown)]
        jobs = [verdict_request(e, s.tokens, s.marks, self.text)
                for e, ss in zip(explanations, shown) for s in ss]
        flat: list[bool | Failure] = []
        for answer in self.client.chat(jobs):
            verdict = parse_verdict(answer.text) if answer.ok else None
            flat.append(verdict if verdict is not None else _failure(
                answer, None, "unreadable verdict (expected 1 or 0)"))
        return [_number_windows(ss) for ss in _split(flat, [len(ss) for ss in shown])]


def _number_windows(results: list) -> list:
    """Failures learn which window of the latent they belong to."""
    return [Failure(i, r.error, r.text) if isinstance(r, Failure) else r
            for i, r in enumerate(results)]
