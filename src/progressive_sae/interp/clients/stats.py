"""What a client did: calls made, answers served from the cache, failures, retries."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class ClientStats:
    """Counters of one client (shared with the response cache that wraps it)."""

    calls: int = 0
    """Requests that reached a model (chat requests and expected-value calls; retries excluded)."""
    cache_hits: int = 0
    """Requests answered from the on-disk response cache, without a model call."""
    failures: int = 0
    """Requests whose answer is an error (after any retries)."""
    retries: int = 0
    """Extra attempts of HTTP requests after a 429, a 5xx, a time-out or a dropped connection."""

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)
