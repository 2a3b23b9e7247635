"""On-disk cache of every LLM response, so that a second run makes no LLM call.

Key: sha256 of (model_id, kind, messages, raw completion prompt if any, parameters) as
canonical JSON. One JSON file per response, under a two-hex-digit shard folder, written
atomically (a killed run leaves either the whole entry or none). Failed answers are NOT
cached: a retry later (a server back up, a rate limit lifted) may succeed, so the next run
asks again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from progressive_sae.atomic import write_json_atomic
from progressive_sae.interp.clients.base import (
    ChatAnswer,
    ChatRequest,
    LLMClient,
    Message,
    TokenScorer,
)
from progressive_sae.interp.clients.stats import ClientStats

CACHE_FORMAT = 1
"""Bumped when the key material or entry layout changes (old entries are then never hit)."""


def request_key(model_id: str, kind: str, payload: dict[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of (format, model, kind, payload)."""
    material = {"format": CACHE_FORMAT, "model": model_id, "kind": kind, **payload}
    text = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def chat_payload(request: ChatRequest) -> dict[str, Any]:
    """The key material of a chat request: everything that shapes its answer (a raw
    completion prompt only when there is one, so chat requests keep their keys)."""
    payload: dict[str, Any] = {
        "messages": [list(m) for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "json_answer": request.json_answer,
    }
    if request.completion is not None:
        payload["completion"] = request.completion
    return payload


class ResponseStore:
    """Entries of one cache folder: `get` returns the stored answer or None."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any | None:
        try:
            entry = json.loads(self.path(key).read_text())
        except (OSError, ValueError):  # absent, or unreadable: ask the model again
            return None
        if not isinstance(entry, dict) or entry.get("key") != key:
            return None
        return entry.get("answer")

    def put(self, key: str, model_id: str, kind: str, payload: dict[str, Any],
            answer: Any) -> None:
        entry = {"key": key, "model": model_id, "kind": kind, "request": payload,
                 "answer": answer}
        write_json_atomic(self.path(key), entry)


class CachedClient:
    """An LLMClient whose answers come from the response cache when present."""

    def __init__(self, inner: LLMClient, folder: Path) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.store = ResponseStore(folder)
        # One record for the pair: calls/failures counted by the inner client, hits here.
        stats = getattr(inner, "stats", None)
        self.stats: ClientStats = stats if isinstance(stats, ClientStats) else ClientStats()
        self.tiny = bool(getattr(inner, "tiny", False))

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatAnswer]:
        answers: list[ChatAnswer | None] = [None] * len(requests)
        keys = [request_key(self.model_id, "chat", chat_payload(r)) for r in requests]
        missing = []
        for i, key in enumerate(keys):
            text = self.store.get(key)
            if isinstance(text, str):
                answers[i] = ChatAnswer(text=text, cached=True)
                self.stats.cache_hits += 1
            else:
                missing.append(i)
        if missing:
            fresh = self.inner.chat([requests[i] for i in missing])
            for i, answer in zip(missing, fresh, strict=True):
                answers[i] = answer
                if answer.ok:
                    self.store.put(keys[i], self.model_id, "chat", chat_payload(requests[i]),
                                   answer.text)
        return [a for a in answers if a is not None]

    def __repr__(self) -> str:
        return f"CachedClient({self.inner!r}, folder={str(self.store.folder)!r})"


class CachedScorer(CachedClient):
    """A cached client over an in-process model: expected values are cached too."""

    inner: TokenScorer  # type: ignore[assignment]

    def expected_values(
        self, messages: Sequence[Message], assistant_parts: Sequence[str],
        values: Sequence[int],
    ) -> list[float]:
        payload = {"messages": [list(m) for m in messages], "parts": list(assistant_parts),
                   "values": [int(v) for v in values]}
        key = request_key(self.model_id, "expected_values", payload)
        stored = self.store.get(key)
        if isinstance(stored, list) and len(stored) == len(assistant_parts):
            self.stats.cache_hits += 1
            return [float(x) for x in stored]
        result = self.inner.expected_values(messages, assistant_parts, values)
        self.store.put(key, self.model_id, "expected_values", payload, result)
        return result


def with_cache(client: LLMClient, folder: Path) -> CachedClient:
    """Wrap `client` in the response cache at `folder` (expected values too for scorers)."""
    if isinstance(client, TokenScorer):
        return CachedScorer(client, folder)
    return CachedClient(client, folder)
