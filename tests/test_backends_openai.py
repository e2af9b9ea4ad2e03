"""The openai backend against a loopback server: what it sends (no server-specific fields unless
asked, a JSON-schema response format for constrained requests, per-request seeds) and what it
measures (per-call latency, time to first token and an early close when streaming)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from specdecode.evaluate.backends import GenerationConfig, Request
from specdecode.evaluate.backends.openai import OpenAIBackend

NESTED = '{"tool_name": "f", "arguments": {"filter": {"year": 2020}}}'
ANSWER = NESTED + '\n{"tool_name": "g", "arguments": {}}'


class Server:
    """Answers every chat completion with ANSWER; streams it in 4-character chunks, 20 ms apart."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.chunks_sent = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                if body.get("stream"):
                    return self._stream(body)
                message = {"role": "assistant", "content": ANSWER}
                usage = {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
                data = json.dumps(
                    {
                        "id": "c",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                        "usage": usage,
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                try:
                    for start in range(0, len(ANSWER), 4):
                        time.sleep(0.02)
                        chunk = {
                            "id": "c",
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": body["model"],
                            "choices": [{"index": 0, "delta": {"content": ANSWER[start : start + 4]}}],
                        }
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        outer.chunks_sent += 1
                    self.wfile.write(b"data: [DONE]\n\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> Server:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def server():
    with Server() as s:
        yield s


def _requests(n: int = 2, schema: dict | None = None) -> list[Request]:
    return [
        Request(f"r{i}", [{"role": "user", "content": "next?"}], response_schema=schema) for i in range(n)
    ]


def test_no_chat_template_kwargs_unless_asked(server: Server) -> None:
    # Regression: every request used to carry extra_body chat_template_kwargs, which
    # api.openai.com rejects as an unknown field.
    OpenAIBackend("m", server.url).generate(_requests(1), GenerationConfig(), adapter=False)
    assert "chat_template_kwargs" not in server.bodies[-1]
    asked = OpenAIBackend("m", server.url, chat_template_kwargs={"enable_thinking": False})
    asked.generate(_requests(1), GenerationConfig(), adapter=False)
    assert server.bodies[-1]["chat_template_kwargs"] == {"enable_thinking": False}


def test_schema_seed_and_first_call_cut(server: Server) -> None:
    schema = {"type": "object", "properties": {"tool_name": {"const": "f"}}}
    config = GenerationConfig(temperature=0.7, seed=5, stop_at_first_call=True)
    got = OpenAIBackend("m", server.url).generate(_requests(3, schema), config, adapter=False)
    assert [g.text for g in got] == [NESTED] * 3  # nested arguments come back whole
    assert sorted(b["seed"] for b in server.bodies) == [5, 6, 7]  # duplicates sample differently
    assert server.bodies[0]["response_format"]["json_schema"]["schema"] == schema
    assert all(g.batch_size == 3 and g.latency > 0 for g in got)
    greedy = OpenAIBackend("m", server.url)
    greedy.generate(_requests(1), GenerationConfig(), adapter=False)
    assert "seed" not in server.bodies[-1] and "response_format" not in server.bodies[-1]


def test_streaming_measures_first_token_and_closes_after_the_first_call(server: Server) -> None:
    backend = OpenAIBackend("m", server.url, stream=True)
    got = backend.generate(_requests(1), GenerationConfig(stop_at_first_call=True), adapter=False)[0]
    assert got.text == NESTED
    assert got.first_token_latency is not None and 0 < got.first_token_latency < got.latency
    full = -(-len(ANSWER) // 4)
    assert got.completion_tokens < full  # the stream was closed before the second call
    assert got.latency < full * 0.02
