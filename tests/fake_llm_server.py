"""A loopback HTTP server that speaks both chat wire formats, so the real SDKs run against it:

* OpenAI chat completions: ``POST /v1/chat/completions`` (``Authorization: Bearer KEY``);
* Gemini Developer API: ``POST /v1[beta]/models/MODEL:generateContent`` (``x-goog-api-key: KEY``).

``reply(request)`` decides the model's text. Faults are injected per request, either from a
``script`` (a list consumed in order; ``None`` = answer normally) or at random with seeded
rates: ``429`` (with ``Retry-After``), ``500``, ``hang`` (answer only after ``hang_seconds``,
longer than the client's timeout) and ``garbage`` (HTTP 200 with a body that is not JSON).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GEMINI_PATH = re.compile(r"^/v1(?:beta|alpha)?/models/([^/:]+):generateContent")


@dataclass
class FakeRequest:
    """What the server saw: the API, model, the prompt text and the raw JSON body."""

    api: str
    model: str
    system: str
    user: str
    body: dict[str, Any]
    auth_ok: bool
    fault: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _openai_prompt(body: dict[str, Any]) -> tuple[str, str]:
    system = "\n".join(m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "system")
    users = [m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user"]
    return system, users[-1] if users else ""


def _gemini_prompt(body: dict[str, Any]) -> tuple[str, str]:
    sys_parts = (body.get("systemInstruction") or {}).get("parts", [])
    system = "\n".join(p.get("text", "") for p in sys_parts)
    users = [
        "".join(p.get("text", "") for p in c.get("parts", []))
        for c in body.get("contents", [])
        if c.get("role", "user") == "user"
    ]
    return system, users[-1] if users else ""


class FakeLLMServer:
    """``with FakeLLMServer(key, reply) as server: server.openai_url / server.gemini_url``."""

    def __init__(
        self,
        api_key: str,
        reply: Callable[[FakeRequest], str],
        *,
        script: list[str | None] | None = None,
        fail_rate: float = 0.0,
        hang_rate: float = 0.0,
        garbage_rate: float = 0.0,
        hang_seconds: float = 2.0,
        retry_after: str | None = "0",
        delay: float = 0.0,
        seed: int = 0,
    ):
        self.api_key = api_key
        self.reply = reply
        self.script = list(script or [])
        self.fail_rate, self.hang_rate, self.garbage_rate = fail_rate, hang_rate, garbage_rate
        self.hang_seconds = hang_seconds
        self.retry_after = retry_after
        self.delay = delay
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.requests: list[FakeRequest] = []
        self.max_in_flight = 0
        self._in_flight = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                outer._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # a hanging handler must not hold up the test
        port = self.server.server_address[1]
        self.openai_url = f"http://127.0.0.1:{port}/v1"
        self.gemini_url = f"http://127.0.0.1:{port}/"

    # ------------------------------------------------------------------ faults
    def _fault(self) -> str | None:
        with self.lock:
            if self.script:
                return self.script.pop(0)
            x = self.rng.random()
        if x < self.fail_rate / 2:
            return "429"
        if x < self.fail_rate:
            return "500"
        if x < self.fail_rate + self.hang_rate:
            return "hang"
        if x < self.fail_rate + self.hang_rate + self.garbage_rate:
            return "garbage"
        return None

    @property
    def calls(self) -> int:
        return len(self.requests)

    def settle(self, quiet: float = 0.3, timeout: float = 10.0) -> int:
        """Wait until no request is in flight and none arrived for ``quiet`` seconds; the call count."""
        deadline, seen, since = time.time() + timeout, -1, time.time()
        while time.time() < deadline:
            with self.lock:
                count, busy = len(self.requests), self._in_flight
            if count != seen or busy:
                seen, since = count, time.time()
            elif time.time() - since >= quiet:
                return self.calls
            time.sleep(0.02)
        raise TimeoutError(f"the fake server was still busy after {timeout} s")

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length)
        if len(raw) < length:  # the client died mid-request (a test's SIGKILL): nothing was asked
            h.close_connection = True
            return None
        body = json.loads(raw or b"{}")
        gemini = GEMINI_PATH.match(h.path)
        if gemini:
            api, model = "gemini", gemini.group(1)
            system, user = _gemini_prompt(body)
            auth_ok = h.headers.get("x-goog-api-key") == self.api_key
        elif h.path.rstrip("/").endswith("/chat/completions"):
            api, model = "openai", str(body.get("model"))
            system, user = _openai_prompt(body)
            auth_ok = h.headers.get("Authorization") == f"Bearer {self.api_key}"
        else:
            return self._send(h, 404, {"error": {"code": 404, "message": f"no route {h.path}"}})
        request = FakeRequest(api, model, system, user, body, auth_ok, headers=dict(h.headers))
        fault = self._fault()
        request.fault = fault
        with self.lock:
            self.requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            self._answer(h, request, fault)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self.lock:
                self._in_flight -= 1

    def _answer(self, h: BaseHTTPRequestHandler, request: FakeRequest, fault: str | None) -> None:
        if self.delay:
            time.sleep(self.delay)
        if not request.auth_ok:
            # Like some real servers, echo what was presented: the client must redact it.
            presented = h.headers.get("Authorization") or h.headers.get("x-goog-api-key") or ""
            return self._error(h, request.api, 401, f"invalid API key {presented}", "UNAUTHENTICATED")
        if fault == "429":
            headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            return self._error(h, request.api, 429, "rate limited", "RESOURCE_EXHAUSTED", headers)
        if fault == "500":
            return self._error(h, request.api, 500, "internal error", "INTERNAL")
        if fault == "400":
            return self._error(h, request.api, 400, "bad request", "INVALID_ARGUMENT")
        if fault == "hang":
            time.sleep(self.hang_seconds)
        if fault == "garbage":
            data = b"<html><body>502 upstream oops</body></html>"
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return None
        text = self.reply(request)
        if request.api == "openai":
            payload = {
                "id": "cmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": request.model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }
        else:
            payload = {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": text}]},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18},
                "modelVersion": request.model,
            }
        return self._send(h, 200, payload)

    def _error(
        self,
        h: BaseHTTPRequestHandler,
        api: str,
        code: int,
        message: str,
        status: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        if api == "openai":
            payload = {"error": {"message": message, "type": status.lower(), "code": code}}
        else:
            payload = {"error": {"code": code, "message": message, "status": status}}
        self._send(h, code, payload, headers)

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler, code: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)

    def __enter__(self) -> FakeLLMServer:
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
