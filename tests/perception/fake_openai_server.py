"""A FAKE OpenAI-compatible chat-completions server for tests (never used by the library).

A threaded HTTP server on 127.0.0.1 (ephemeral port) answering ``POST /v1/chat/completions``. A script
function decides each answer from the request and its 1-based number: ``("ok", text)``, ``("status", code)``
(e.g. 429, 500, with ``retry-after-ms: 1`` so the SDK's backoff is quick), ``("sleep", seconds)`` (a
timeout for a short client timeout), ``("garbage", text)`` — the same as ok with any text —, ``("empty",)``,
``("refuse",)`` (a polite refusal, :data:`REFUSAL`), ``("echo_key",)`` (a 401 whose message echoes the bearer
token it was sent, as OpenAI's ``Incorrect API key provided: sk-...`` does) or ``("hang",)`` (no answer until
the server shuts down). It records every request (path, Authorization header, JSON body) and the peak number
in flight.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Script = Callable[[dict[str, Any], int], tuple]

DEFAULT_ANSWER = "1. Move forward.\n2. A red chair appears ahead-left.\n3. The red chair is ahead-left."
REFUSAL = "I'm sorry, but I can't help with identifying details in these images."


class FakeOpenAIServer:
    """Use as a context manager; ``base_url`` is ``http://127.0.0.1:<port>/v1``."""

    def __init__(self, script: Script | None = None, delay: float = 0.0) -> None:
        self.script = script or (lambda body, n: ("ok", DEFAULT_ANSWER))
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(
                        {"path": self.path, "authorization": self.headers.get("Authorization"), "body": body}
                    )
                    number = len(server.requests)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay)
                    self._answer(server.script(body, number))
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, action: tuple) -> None:
                kind = action[0]
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found"}})
                if kind == "status":
                    return self._send(action[1], {"error": {"message": f"fake error {action[1]}"}})
                if kind == "echo_key":
                    key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                    message = (
                        f"Incorrect API key provided: {key}. You can find your API key at "
                        "https://platform.openai.com/account/api-keys."
                    )
                    error = {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
                    return self._send(401, {"error": error})
                if kind == "hang":
                    server._stopped.wait()
                    return None
                if kind == "refuse":
                    return self._send(200, _completion(REFUSAL))
                if kind == "sleep":
                    time.sleep(action[1])
                    return self._send(200, _completion(DEFAULT_ANSWER))
                if kind == "empty":
                    return self._send(200, _completion(""))
                return self._send(200, _completion(action[1]))

            def _send(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("retry-after-ms", "1")
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-vlm",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }
