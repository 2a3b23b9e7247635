"""Prompts for explanation, simulation, fuzzing and detection, and parsing their answers.

Windows are shown as decoded text with activating (or highlighted) tokens marked `<<…>>`;
activations are integers 0–10, scaled by the latent's max activation. Parsers return None
for an answer they cannot read (the scorer records it as a failure).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from progressive_sae.interp.clients.base import ChatRequest, Message

TokenText = Callable[[int], str]
"""Token id → its text."""

EXPLAIN_SYSTEM = (
    "You study one feature of a language model. You see text excerpts where it fires; the "
    "tokens it fires on are marked <<like this>>, and each excerpt is followed by those "
    "tokens with the feature's activation from 1 to 10. Say in a few words which tokens or "
    "contexts make it fire. Answer with the explanation only, one short line.")
SIMULATE_SYSTEM = (
    "You predict how strongly a feature of a language model fires on each token of a text, "
    "from an explanation of the feature. Activations are integers from 0 (not at all) to 10 "
    "(maximally); most tokens are 0.")
FUZZ_SYSTEM = (
    "A feature of a language model is explained below. In the text, some tokens are marked "
    "<<like this>>. Answer 1 if the marked tokens are ones this feature fires on, 0 if not. "
    "Answer with the single digit only.")
DETECT_SYSTEM = (
    "A feature of a language model is explained below. Answer 1 if the feature fires "
    "anywhere in the text, 0 if not. Answer with the single digit only.")


def token_text_from(tokenizer: Any | None) -> TokenText:
    """Decode one token id at a time (memoised); '<id>' without a tokenizer."""
    memo: dict[int, str] = {}

    def text(token: int) -> str:
        token = int(token)
        if token not in memo:
            memo[token] = f"<{token}>" if tokenizer is None else tokenizer.decode([token])
        return memo[token]

    return text


def load_tokenizer(meta: dict[str, Any]) -> Any | None:
    """The tokenizer named by a cache manifest (records' meta): the offline default, a model
    folder or a hub name in the local cache; None when it names nothing loadable."""
    from progressive_sae.lm.model import load_tokenizer as named_tokenizer

    for name in ((meta.get("tokenizer") or {}).get("name"), meta.get("model")):
        tokenizer = named_tokenizer(name) if name else None
        if tokenizer is not None:
            return tokenizer
    return None


def scaled(acts: np.ndarray, max_act: float) -> np.ndarray:
    """Activations as integers 0–10 relative to the latent's max."""
    if max_act <= 0:
        return np.zeros(len(acts), dtype=np.int64)
    return np.clip(np.rint(10 * np.asarray(acts) / max_act), 0, 10).astype(np.int64)


def marked_text(tokens: Sequence[int], marks: Sequence[bool], text: TokenText) -> str:
    """Decoded tokens with runs of marked tokens wrapped in << >>."""
    out, inside = [], False
    for token, mark in zip(tokens, marks):
        if mark and not inside:
            out.append("<<")
        elif not mark and inside:
            out.append(">>")
        inside = bool(mark)
        out.append(text(token))
    if inside:
        out.append(">>")
    return "".join(out)


def explain_request(windows: Sequence[tuple[np.ndarray, np.ndarray]], text: TokenText,
                    max_tokens: int) -> ChatRequest:
    """Windows are (tokens, activations scaled 0–10)."""
    parts = []
    for i, (tokens, values) in enumerate(windows, 1):
        marks = values > 0
        listed = ", ".join(f"{text(t).strip() or repr(text(t))} ({v})"
                           for t, v in zip(tokens, values) if v > 0)
        parts.append(f"Excerpt {i}: {marked_text(tokens, marks, text)}\nActivations: {listed}")
    user = "\n\n".join(parts) + "\n\nExplanation of the feature:"
    return ChatRequest(messages=(("system", EXPLAIN_SYSTEM), ("user", user)),
                       max_tokens=max_tokens)


COMPLETION_HEAD = ("A feature of a language model fires on some tokens, marked <<like "
                   "this>>.")
COMPLETION_PREFIX = 'fires on the token "'
"""Where a completion-style explanation prompt ends: a tiny model completes it by copying a
token from the list above it."""
COMPLETION_TOKENS = 5
"""Tokens listed (those with the largest summed activation over the shown windows)."""
COMPLETION_WINDOWS = 4
"""Windows shown, cut to COMPLETION_CONTEXT tokens either side of their peak."""
COMPLETION_CONTEXT = 8


def _shown(token: str) -> str:
    """A token as listed in quotes: stripped, or escaped when it is only whitespace."""
    return token.strip() or token.encode("unicode_escape").decode()


def explain_completion(windows: Sequence[tuple[np.ndarray, np.ndarray]], text: TokenText,
                       max_tokens: int) -> ChatRequest:
    """The explanation prompt for tiny models: the tokens the feature fires on most (with
    counts and mean activations 0–10), a few short marked windows, and `Explanation: fires
    on the token "` to complete. Windows are (tokens, activations scaled 0–10), strongest
    first. Chat-only clients get the same text as a user message."""
    counts: dict[int, int] = {}
    sums: dict[int, float] = {}
    for tokens, values in windows:
        for token, value in zip(tokens.tolist(), values.tolist()):
            if value > 0:
                counts[token] = counts.get(token, 0) + 1
                sums[token] = sums.get(token, 0.0) + value
    top = sorted(counts, key=lambda t: (-sums[t], t))[:COMPLETION_TOKENS]
    listed = ", ".join(f'"{_shown(text(t))}" ({counts[t]}, {round(sums[t] / counts[t])})'
                       for t in top)
    shown = []
    for tokens, values in windows[:COMPLETION_WINDOWS]:
        peak = int(np.argmax(values))
        cut = slice(max(0, peak - COMPLETION_CONTEXT), peak + COMPLETION_CONTEXT + 1)
        line = marked_text(tokens[cut], values[cut] > 0, text)
        shown.append("- " + " ".join(line.split()))
    body = (f"{COMPLETION_HEAD}\nTokens it fires on most (count, mean activation 0-10): "
            f"{listed}\nExamples:\n" + "\n".join(shown) + "\nExplanation:")
    ask = (f"{body}\n\nComplete the explanation in one short line, starting with: "
           f"{COMPLETION_PREFIX}")
    return ChatRequest(messages=(("user", ask),), max_tokens=max_tokens,
                       completion=f"{body} {COMPLETION_PREFIX}")


def clean_completion(answer: str) -> str | None:
    """The explanation from an answer to `explain_completion`. A continuation of its prefix
    (an in-process model), or a line that starts with the prefix (chat), is kept up to the
    quote that closes the token, with any further '"x"' joined to it by a comma, 'and' or
    'or' (the rest is a tiny model's rambling); any other line is kept as it is."""
    line = clean_explanation(answer)
    if line is None:
        return None
    rest = line[len(COMPLETION_PREFIX):] if line.lower().startswith(
        COMPLETION_PREFIX.lower()) else line
    match = re.match(r'\s*([^"\s][^"]*?)\s*"((?:\s*,?\s*(?:and|or)?\s*"[^"]+")*)', rest + '"')
    if match is None or re.search(r"\s", match.group(1)):
        return line  # not a token's text: an answer in words
    return f'{COMPLETION_PREFIX}{match.group(1)}"{match.group(2)}'


def clean_explanation(answer: str) -> str | None:
    """First non-empty line, without a leading 'Explanation:' and quotes, at most 200
    characters; None if empty."""
    for line in answer.strip().splitlines():
        line = re.sub(r"^\s*(explanation( of the feature)?\s*:)\s*", "", line.strip(),
                      flags=re.IGNORECASE).strip().strip('"').strip()
        if line:
            return line[:200]
    return None


def simulation_messages(explanation: str, tokens: Sequence[int], text: TokenText
                        ) -> tuple[Message, ...]:
    listed = json.dumps([text(t) for t in tokens], ensure_ascii=False)
    user = (f"Explanation of the feature: {explanation}\n\nTokens: {listed}\n\n"
            f"For each token, in order, give its activation. Answer with a JSON object "
            f'{{"activations": [value, ...]}} holding {len(tokens)} integers, one per token.')
    return (("system", SIMULATE_SYSTEM), ("user", user))


def simulation_request(explanation: str, tokens: Sequence[int], text: TokenText
                       ) -> ChatRequest:
    """Values only, not [token, value] pairs: a server without logprobs generates ~2 tokens
    per window token ("3, ") instead of ~12, and the tokens are in the question already."""
    return ChatRequest(messages=simulation_messages(explanation, tokens, text),
                       max_tokens=3 * len(tokens) + 24, json_answer=True)


def all_at_once_prompt(explanation: str, tokens: Sequence[int], text: TokenText
                       ) -> tuple[tuple[Message, ...], list[str]]:
    """Bills et al.'s layout: the assistant turn lists `token<TAB>value` lines; the value
    slots are read off one forward pass (each part ends where a value is expected)."""
    user = (f"Explanation of the feature: {explanation}\n\nFor each token of the text, "
            "write the token, a tab, and its activation (0–10), one token per line.\n\n"
            f"Text: {''.join(text(t) for t in tokens)}")
    parts = [f"{_line(text(tokens[0]))}\t"] + [f"unknown\n{_line(text(t))}\t"
                                               for t in tokens[1:]]
    return (("system", SIMULATE_SYSTEM), ("user", user)), parts


def _line(token: str) -> str:
    """A token's text kept on one line of the token/value table."""
    return token.replace("\n", "\\n").replace("\t", "\\t") or "(empty)"


def parse_simulation(answer: str, n_tokens: int) -> list[float] | None:
    """n_tokens values 0–10 from a JSON answer (object with a list, or a bare list of
    [token, value] pairs, {token, activation} objects or numbers); None if unreadable."""
    data = _first_json(answer)
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if lists else None
    if not isinstance(data, list) or len(data) != n_tokens:
        return None
    values = []
    for item in data:
        if isinstance(item, (list, tuple)) and item:
            item = item[-1]
        elif isinstance(item, dict):
            numbers = [v for v in item.values() if _number(v) is not None]
            item = numbers[-1] if numbers else None
        value = _number(item)
        if value is None:
            return None
        values.append(min(10.0, max(0.0, value)))
    return values


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and np.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            return _number(float(value.strip()))
        except ValueError:
            return None
    return None


def _first_json(answer: str) -> Any:
    text = re.sub(r"^```(?:json)?|```$", "", answer.strip(), flags=re.MULTILINE).strip()
    decoder = json.JSONDecoder()
    for start in (m.start() for m in re.finditer(r"[\[{]", text)):
        try:
            return decoder.raw_decode(text, start)[0]
        except json.JSONDecodeError:
            continue
    return None


def verdict_request(explanation: str, tokens: Sequence[int], marks: Sequence[bool] | None,
                    text: TokenText) -> ChatRequest:
    """Fuzzing (marks given) or detection (marks None): answer '1' or '0'."""
    system = DETECT_SYSTEM if marks is None else FUZZ_SYSTEM
    shown = ("".join(text(t) for t in tokens) if marks is None
             else marked_text(tokens, marks, text))
    user = f"Explanation of the feature: {explanation}\n\nText: {shown}\n\nAnswer (1 or 0):"
    return ChatRequest(messages=(("system", system), ("user", user)), max_tokens=4)


def verdicts_prompt(explanation: str, shown: Sequence[tuple[Sequence[int], Sequence[bool] | None]],
                    text: TokenText) -> tuple[tuple[Message, ...], list[str]]:
    """All windows of a latent in one prompt; the assistant turn lists `Text i: <digit>`
    and the digit slots are read off one forward pass (an in-process model)."""
    fuzzing = shown[0][1] is not None
    listed = "\n".join(
        f"Text {i}: " + ("".join(text(t) for t in tokens) if marks is None
                         else marked_text(tokens, marks, text)).replace("\n", " ")
        for i, (tokens, marks) in enumerate(shown, 1))
    question = ("whether its marked tokens are ones this feature fires on" if fuzzing
                else "whether the feature fires anywhere in it")
    user = (f"Explanation of the feature: {explanation}\n\n{listed}\n\nFor each text, "
            f"answer 1 or 0: {question}. One line per text.")
    system = FUZZ_SYSTEM if fuzzing else DETECT_SYSTEM
    parts = ["Text 1: "] + [f"unknown\nText {i}: " for i in range(2, len(shown) + 1)]
    return (("system", system), ("user", user)), parts


def parse_verdict(answer: str) -> bool | None:
    """'1'/'yes'/'true' → True, '0'/'no'/'false' → False (first such word); else None."""
    match = re.search(r"\b(1|0|yes|no|true|false|correct|incorrect)\b", answer.lower())
    if match is None:
        return None
    return match.group(1) in ("1", "yes", "true", "correct")
