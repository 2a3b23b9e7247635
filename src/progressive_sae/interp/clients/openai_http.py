"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp's server, …) over plain HTTP.

Standard library only: each request is a blocking http.client call run in a worker thread,
under an asyncio semaphore (at most `concurrency` in flight). 429, 5xx, time-outs and dropped
connections are retried with exponential backoff and jitter (a seeded local generator) and
honour Retry-After; anything else, or the last failure, becomes ChatAnswer(error=...), never
an exception. The API key is read from an environment variable and is never logged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import http.client
import json
import os
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from progressive_sae.errors import PSAEError, first_line
from progressive_sae.interp.clients.base import ChatAnswer, ChatRequest
from progressive_sae.interp.clients.stats import ClientStats

RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
RETRY_ERRORS = (TimeoutError, ConnectionError, http.client.RemoteDisconnected,
                http.client.IncompleteRead, http.client.BadStatusLine)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How failed HTTP requests are retried."""

    max_retries: int = 5
    """Extra attempts after the first one."""
    base_delay: float = 1.0
    """Seconds before the first retry; doubled each time."""
    max_delay: float = 60.0
    """Upper bound on one wait; a longer Retry-After is cut to it (the retry may then
    fail again and use up an attempt)."""
    jitter: float = 0.25
    """Each wait is stretched by a random factor in [1, 1 + jitter]."""
    seed: int = 0
    """Seed of the jitter's local generator (waits repeat run to run)."""
    timeout: float = 120.0
    """Seconds to wait for one HTTP response."""


class _Retry(Exception):
    """A retryable failure, with the server's Retry-After (seconds) when it sent one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Fail(Exception):
    """A failure that retrying will not fix."""


class RequestFailed(RuntimeError):
    """A request that failed for good (after any retries); the message is one line."""


class OpenAIChatClient:
    """LLMClient over POST {url}/chat/completions."""

    def __init__(
        self, url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8, retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, preflight: bool = True,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise PSAEError(f"LLM url {url!r}: expected http(s)://host[:port]/path, e.g. "
                            "http://127.0.0.1:8000/v1")
        if concurrency < 1:
            raise PSAEError(f"concurrency={concurrency}: expected at least 1")
        self.url = url.rstrip("/")
        self.model = model
        self.model_id = f"openai:{model}@{self.url}"
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.stats = ClientStats()
        self._parsed = parsed
        self._key = os.environ.get(api_key_env) or None
        self._sleep = sleep
        self._rng = random.Random(self.retry.seed)
        if preflight:
            self._preflight()

    def __repr__(self) -> str:  # the key stays out of every printout
        return f"OpenAIChatClient(url={self.url!r}, model={self.model!r})"

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatAnswer]:
        return self.run(self.achat(requests))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Runs `coroutine`; from inside a running event loop, on a helper thread."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coroutine)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coroutine).result()

    def pool(self) -> concurrent.futures.ThreadPoolExecutor:
        """Threads for the blocking HTTP calls of one batch (asyncio's default pool has only
        min(32, cores + 4) of them); the caller shuts it down."""
        return concurrent.futures.ThreadPoolExecutor(self.concurrency,
                                                     thread_name_prefix="psae-llm")

    async def achat(self, requests: Sequence[ChatRequest]) -> list[ChatAnswer]:
        gate = asyncio.Semaphore(self.concurrency)
        pool = self.pool()

        async def one(request: ChatRequest) -> ChatAnswer:
            async with gate:
                return await self._answer(request, pool)

        try:
            answers = await asyncio.gather(*(one(r) for r in requests))
        finally:
            pool.shutdown(wait=False)
        self.stats.calls += len(answers)
        self.stats.failures += sum(1 for a in answers if not a.ok)
        return list(answers)

    async def _answer(self, request: ChatRequest,
                      pool: concurrent.futures.Executor) -> ChatAnswer:
        try:
            text = await self.request("/chat/completions", self._body(request), _content, pool)
        except RequestFailed as e:
            return ChatAnswer(None, error=str(e))
        return ChatAnswer(text)

    async def request(self, path: str, payload: dict[str, Any],
                      read: Callable[[int, http.client.HTTPMessage, bytes], T],
                      pool: concurrent.futures.Executor) -> T:
        """POST `payload` to {url}{path} with the retry policy; `read` turns a response into
        the result or raises _Retry / _Fail. The last failure raises RequestFailed (one line)."""
        body = json.dumps(payload).encode()
        loop = asyncio.get_running_loop()
        for attempt in range(self.retry.max_retries + 1):
            try:
                status, headers, raw = await loop.run_in_executor(pool, self._post, path, body)
                try:
                    return read(status, headers, raw)
                except (ValueError, KeyError, IndexError, TypeError) as e:  # an unexpected shape
                    raise _Fail(f"malformed response body ({first_line(e)}): "
                                f"{_snippet(raw)}") from None
            except _Fail as e:
                raise RequestFailed(str(e)) from None
            except (_Retry, *RETRY_ERRORS) as e:
                failure: BaseException = e
            except OSError as e:  # e.g. the host name stopped resolving: not worth waiting
                raise RequestFailed(f"{self.url}: {first_line(e)}") from None
            except Exception as e:  # a failure is an answer, never a crash
                raise RequestFailed(f"request failed: {first_line(e)}") from None
            if attempt == self.retry.max_retries:
                break
            self.stats.retries += 1
            await self._sleep(self._delay(attempt, getattr(failure, "retry_after", None)))
        tries = self.retry.max_retries + 1
        raise RequestFailed(f"{_describe(failure)} (after {tries} attempts)")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = self.retry.base_delay * 2 ** attempt
        backoff *= 1 + self.retry.jitter * self._rng.random()
        if retry_after is not None:
            backoff = max(backoff, retry_after)
        return min(backoff, self.retry.max_delay)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": role, "content": content}
                         for role, content in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.json_answer:
            body["response_format"] = {"type": "json_object"}
        return body

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        p = self._parsed
        kind = http.client.HTTPSConnection if p.scheme == "https" else http.client.HTTPConnection
        return kind(p.hostname, p.port, timeout=timeout)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def _post(self, path: str, body: bytes) -> tuple[int, http.client.HTTPMessage, bytes]:
        connection = self._connection(self.retry.timeout)
        try:
            connection.request("POST", self._parsed.path.rstrip("/") + path, body=body,
                               headers=self._headers())
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def _preflight(self) -> None:
        """Connection-level failures (refused, unknown host, no route) are fatal; anything
        the server answers to GET /models, even an error status, is fine."""
        connection = self._connection(timeout=10.0)
        try:
            try:
                connection.connect()
            except OSError as e:
                raise PSAEError(f"LLM endpoint {self.url} is unreachable "
                                f"({first_line(e)})") from None
            try:
                connection.request("GET", self._parsed.path.rstrip("/") + "/models",
                                   headers=self._headers())
                connection.getresponse().read()
            except (OSError, http.client.HTTPException):
                pass  # it connected; what it answers to /models does not matter
        finally:
            connection.close()


def response_json(status: int, headers: http.client.HTTPMessage, raw: bytes) -> Any:
    """The parsed body of a 200 response; _Retry for a retryable status, _Fail otherwise."""
    if status in RETRY_STATUSES:
        raise _Retry(f"HTTP {status}: {_snippet(raw)}", _retry_after(headers))
    if status != 200:
        raise _Fail(f"HTTP {status}: {_snippet(raw)}")
    try:
        return json.loads(raw)
    except ValueError as e:
        raise _Fail(f"malformed response body ({first_line(e)}): {_snippet(raw)}") from None


def _content(status: int, headers: http.client.HTTPMessage, raw: bytes) -> str:
    """The answer text of one chat completion response."""
    content = response_json(status, headers, raw)["choices"][0]["message"]["content"]
    if not isinstance(content, str):
        raise _Fail(f"response without message content: {_snippet(raw)}")
    return content


def _retry_after(headers: http.client.HTTPMessage) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _snippet(raw: bytes, limit: int = 120) -> str:
    text = " ".join(raw.decode("utf-8", "replace").split())
    return text[:limit] + ("…" if len(text) > limit else "")


def _describe(e: BaseException) -> str:
    return str(e) if isinstance(e, _Retry) else f"connection failed: {first_line(e)}"
