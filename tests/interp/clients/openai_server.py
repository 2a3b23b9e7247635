"""A real OpenAI-compatible HTTP server on 127.0.0.1 for the client tests.

It answers POST /v1/chat/completions from any in-process LLMClient (the offline SmolLM2 in
the tests) and GET /v1/models, and plays scripted faults in order, one per chat request:
"429" (with Retry-After), "500", "malformed" (a body that is not JSON), "drop" (close the
connection without answering); `always` replays one fault on every request. With `systemone`
(request body → level probabilities per question), it also answers POST /v1/systemone, faults
included, the way `transformers serve` does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from progressive_sae.interp.clients.base import ChatRequest, LLMClient

FAULTS = ("429", "500", "malformed", "drop")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # the default backlog of 5 drops bursts of connections for 1 s


class OpenAIServer:
    """Use as a context manager; `url` is the base URL (…/v1)."""

    def __init__(self, client: LLMClient | None = None, faults: Iterable[str] = (),
                 always: str | None = None, retry_after: str = "1",
                 answer: Callable[[ChatRequest], str] | None = None, delay: float = 0.0,
                 systemone: Callable[[dict[str, Any]], dict[str, list[float]]] | None = None,
                 ) -> None:
        self.client = client
        self.faults = list(faults)
        self.always = always
        self.retry_after = retry_after
        self.answer = answer
        self.delay = delay
        self.systemone = systemone
        self.hits = 0
        """POST /chat/completions (and /systemone) requests received (faults included)."""
        self.bodies: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_fault(self) -> str | None:
        with self._lock:
            self.hits += 1
            if self.always:
                return self.always
            return self.faults.pop(0) if self.faults else None

    def _reply(self, body: dict[str, Any]) -> str:
        request = ChatRequest(
            messages=tuple((m["role"], m["content"]) for m in body["messages"]),
            max_tokens=int(body.get("max_tokens", 200)),
            temperature=float(body.get("temperature", 0.0)),
            json_answer=body.get("response_format") == {"type": "json_object"})
        if self.answer is not None:
            return self.answer(request)
        assert self.client is not None
        with self._model_lock:  # one model, one caller at a time
            (answer,) = self.client.chat([request])
        return answer.text if answer.ok else f"(model failed: {answer.error})"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: bytes, headers: dict[str, str] = {}):  # noqa: B006
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, json.dumps({"object": "list", "data": []}).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                served = ["/v1/chat/completions"] + (["/v1/systemone"] if server.systemone else [])
                if self.path not in served:
                    self._send(404, b'{"error": "not found"}')
                    return
                fault = server._next_fault()
                with server._lock:
                    server.bodies.append(json.loads(raw))
                    server.authorizations.append(self.headers.get("Authorization"))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = self._answer(fault, json.loads(raw))
                finally:  # counted out before the client can see the answer
                    with server._lock:
                        server.in_flight -= 1
                if reply is None:
                    self.close_connection = True
                    self.connection.shutdown(2)
                else:
                    self._send(*reply)

            def _answer(self, fault: str | None, body: dict[str, Any]
                        ) -> tuple[int, bytes, dict[str, str]] | None:
                """(status, body, headers) to send, or None to drop the connection."""
                time.sleep(server.delay)
                if fault == "429":
                    return 429, b'{"error": "rate limited"}', {"Retry-After": server.retry_after}
                if fault == "500":
                    return 500, b'{"error": "internal error"}', {}
                if fault == "malformed":
                    return 200, b'{"choices": [{"message": {"content": "cut sh', {}
                if fault == "drop":
                    return None
                if "questions" in body and server.systemone is not None:
                    levels = server.systemone(body)
                    answers = {name: {"type": "score", "probabilities": {
                        str(i): p for i, p in enumerate(levels[name])}} for name in levels}
                    return 200, json.dumps({"model": body.get("model"),
                                            "answers": answers}).encode(), {}
                text = server._reply(body)
                return 200, json.dumps({
                    "id": f"chatcmpl-{server.hits}", "object": "chat.completion",
                    "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                }).encode(), {}

        return Handler
