"""Any OpenAI-compatible server (``vllm serve --enable-lora``, Ollama, llama.cpp, OpenAI).

The key comes from the environment variable named by ``api_key_env``, never from a flag.
Server-specific fields are sent only when asked for: ``chat_template_kwargs`` (vLLM, SGLang;
api.openai.com rejects unknown fields). With ``stream``, the time to the first token is
measured and, in next-call mode, the stream is closed as soon as the first call is complete.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from specdecode.errors import InputError
from specdecode.evaluate.backends.types import Generation, GenerationConfig, Request, finish_text
from specdecode.evaluate.stops import CallScanner


class OpenAIBackend:
    """Requests answered concurrently (``concurrency`` at a time), each timed on its own."""

    name = "openai"

    def __init__(
        self,
        base_model: str,
        base_url: str,
        lora_name: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 120.0,
        chat_template_kwargs: dict[str, Any] | None = None,
        stream: bool = False,
    ):
        from openai import OpenAI

        from specdecode.outputs import register_secret

        self.base_url = base_url
        key = os.environ.get(api_key_env) or "EMPTY"
        register_secret(key)  # never written anywhere (specdecode.outputs.redact)
        self.client = OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=2)
        self.base_model, self.lora_name = base_model, lora_name
        self.has_adapter = lora_name is not None
        self.identity = {
            "backend": self.name,
            "base_model": base_model,
            "adapter": lora_name,
            "base_url": base_url,
        }
        self.concurrency = concurrency
        self.chat_template_kwargs = chat_template_kwargs
        self.stream = stream

    def request_kwargs(
        self, request: Request, config: GenerationConfig, model: str, index: int
    ) -> dict[str, Any]:
        """The chat-completions arguments for one request."""
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": request.messages,
            "temperature": config.temperature,
            "max_tokens": config.max_new_tokens,
        }
        if self.chat_template_kwargs is not None:
            kwargs["extra_body"] = {"chat_template_kwargs": self.chat_template_kwargs}
        if config.stop:
            kwargs["stop"] = list(config.stop)[:4]
        if request.tools:
            kwargs["tools"] = request.tools
        if config.temperature > 0:
            kwargs["seed"] = config.seed + index  # duplicate requests sample differently
        if request.response_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "tool_call", "schema": request.response_schema},
            }
        return kwargs

    def _one(self, request: Request, config: GenerationConfig, model: str, index: int, n: int) -> Generation:
        """One request; a failed one (server unreachable, timeout, 4xx/5xx) stops the command."""
        from openai import APIError

        try:
            return self._request(request, config, model, index, n)
        except APIError as exc:
            text = " ".join(str(exc).split())  # one line, even for a multi-line server body
            key = self.client.api_key
            if key and key != "EMPTY":
                text = text.replace(key, "***")  # never print the key, even if the server echoes it
            raise InputError(
                f"request to --base-url {self.base_url} failed: {type(exc).__name__}: {text}"
            ) from None

    def _request(
        self, request: Request, config: GenerationConfig, model: str, index: int, n: int
    ) -> Generation:
        kwargs = self.request_kwargs(request, config, model, index)
        if self.stream:
            return self._streamed(kwargs, config, n)
        started = time.perf_counter()
        response = self.client.chat.completions.create(**kwargs)
        elapsed = time.perf_counter() - started
        message = response.choices[0].message
        calls = [c.model_dump() for c in message.tool_calls] if message.tool_calls else None
        usage = response.usage
        return Generation(
            text=finish_text(message.content or "", config),
            latency=elapsed,
            tool_calls=calls,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            batch_size=n,
        )

    def _streamed(self, kwargs: dict[str, Any], config: GenerationConfig, n: int) -> Generation:
        """One streamed request: time to first token, and an early close once the first call is
        complete (``completion_tokens`` then counts the chunks received, one token each on vLLM)."""
        scanner = CallScanner() if config.stop_at_first_call else None
        started = time.perf_counter()
        stream = self.client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
        parts: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        first: float | None = None
        usage, chunks = None, 0
        try:
            for chunk in stream:
                usage = chunk.usage or usage
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                if not (delta.content or delta.tool_calls):
                    continue
                chunks += 1
                if first is None:
                    first = time.perf_counter() - started
                for call in delta.tool_calls or []:
                    _merge_call(calls.setdefault(call.index, {}), call)
                if delta.content:
                    parts.append(delta.content)
                    if scanner is not None and scanner.feed(delta.content) is not None:
                        break
        finally:
            stream.close()
        elapsed = time.perf_counter() - started
        return Generation(
            text=finish_text("".join(parts), config),
            latency=elapsed,
            first_token_latency=first,
            tool_calls=[calls[i] for i in sorted(calls)] or None,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else chunks,
            batch_size=n,
        )

    def generate(
        self, requests: Sequence[Request], config: GenerationConfig, adapter: bool
    ) -> list[Generation]:
        model = self.lora_name if adapter and self.lora_name else self.base_model
        n = min(self.concurrency, len(requests))
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda ir: self._one(ir[1], config, model, ir[0], n), enumerate(requests)))


def _merge_call(into: dict[str, Any], delta: Any) -> None:
    """Accumulate one streamed tool-call delta into the OpenAI ``tool_calls`` entry shape."""
    function = into.setdefault("function", {"name": "", "arguments": ""})
    into.setdefault("type", "function")
    if delta.id:
        into["id"] = delta.id
    if delta.function is not None:
        function["name"] += delta.function.name or ""
        function["arguments"] += delta.function.arguments or ""
