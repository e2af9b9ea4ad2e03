"""The two chat-model providers: Gemini through ``google-genai`` and any OpenAI-compatible
server through ``openai``. Each sends exactly one HTTP request per ``send`` (the SDKs' own
retries are switched off) and turns every failure into :class:`TransientError` (worth a
retry: 408/409/429/5xx, timeouts, connection errors, malformed bodies) or
:class:`PermanentError` (anything else, e.g. 400/401/404). Error texts never hold the key.
"""

from __future__ import annotations

import email.utils
import os
import time
from dataclasses import dataclass
from typing import Any, Protocol

from specdecode.errors import InputError
from specdecode.outputs import register_secret

PROVIDERS = ("gemini", "openai")
KEY_ENVS = {"gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "openai": ("OPENAI_API_KEY",)}
JSON_MODES = ("schema", "object", "off")
RETRYABLE_STATUS = {408, 409, 429}


@dataclass(frozen=True)
class GenerationSettings:
    """What decides a reply besides the prompt (part of the cache key)."""

    temperature: float | None = 0.0  # None: the provider's default (some reasoning models demand it)
    seed: int | None = 0
    max_tokens: int = 4096
    json_mode: str = "schema"  # schema: response schema; object: JSON mode; off: plain text

    def __post_init__(self) -> None:
        if self.json_mode not in JSON_MODES:
            raise InputError(f"unknown JSON mode {self.json_mode!r}: choose {', '.join(JSON_MODES)}")
        if self.max_tokens < 1:
            raise InputError("max tokens must be at least 1")


@dataclass
class Reply:
    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class ProviderError(Exception):
    """A failed request; ``kind`` is a short label for counting (429, 500, timeout, …)."""

    def __init__(self, message: str, kind: str, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.retry_after = retry_after


class TransientError(ProviderError):
    """Worth another attempt."""


class PermanentError(ProviderError):
    """Another attempt would fail the same way."""


class Provider(Protocol):
    name: str

    def send(
        self, messages: list[dict[str, str]], schema: dict[str, Any] | None, gen: GenerationSettings
    ) -> Reply: ...


def resolve_api_key(provider: str, api_key_env: str | None, base_url: str | None) -> str:
    """The key from the environment: ``api_key_env`` if given, else the provider's usual variables.

    A local OpenAI-compatible server (``base_url`` set) needs no key; the client then sends a
    placeholder.
    """
    if provider not in PROVIDERS:
        raise InputError(f"unknown provider {provider!r}: choose {' or '.join(PROVIDERS)}")
    names = (api_key_env,) if api_key_env else KEY_ENVS[provider]
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            register_secret(value)  # never written anywhere from now on (specdecode.outputs)
            return value
    if provider == "openai" and base_url and not api_key_env:
        return "not-needed"
    raise InputError(f"no API key: set the environment variable {' or '.join(names)}")


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
    except Exception:
        return None
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


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of the secret (and of its long prefix) replaced."""
    if secret and len(secret) >= 6 and secret != "not-needed":
        text = text.replace(secret, "***")
        if len(secret) >= 16:
            text = text.replace(secret[:12], "***")
    return text


def _status_error(code: int, message: str, headers: Any, secret: str) -> ProviderError:
    message = redact(f"HTTP {code}: {message}", secret)[:500]
    if code in RETRYABLE_STATUS or code >= 500:
        return TransientError(message, str(code), parse_retry_after(headers))
    return PermanentError(message, str(code))


def _transport_classes() -> tuple[type[BaseException], ...]:
    """httpx / httpx2 transport failures (timeouts, refused connections, broken HTTP)."""
    classes: list[type[BaseException]] = []
    for module in ("httpx", "httpx2"):
        try:
            mod = __import__(module)
        except ImportError:
            continue
        classes.append(mod.TransportError)
    return tuple(classes)


def _is_timeout(exc: BaseException) -> bool:
    return "timeout" in type(exc).__name__.lower() or isinstance(exc, TimeoutError)


class OpenAIProvider:
    """Any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, llama.cpp, Ollama)."""

    name = "openai"

    def __init__(self, model: str, api_key: str, base_url: str | None, timeout: float):
        import openai

        self.model = model
        self._secret = api_key
        self._official = base_url is None
        self._openai = openai
        self.client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)

    def send(
        self, messages: list[dict[str, str]], schema: dict[str, Any] | None, gen: GenerationSettings
    ) -> Reply:
        oa = self._openai
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages}
        # OpenAI's own newer models accept only max_completion_tokens; local servers know max_tokens.
        kwargs["max_completion_tokens" if self._official else "max_tokens"] = gen.max_tokens
        if gen.temperature is not None:
            kwargs["temperature"] = gen.temperature
        if gen.seed is not None:
            kwargs["seed"] = gen.seed
        if gen.json_mode == "schema" and schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": schema, "strict": False},
            }
        elif gen.json_mode in ("schema", "object"):
            kwargs["response_format"] = {"type": "json_object"}
        try:
            response = self.client.chat.completions.create(**kwargs)
        except oa.APIStatusError as exc:
            raise _status_error(
                exc.status_code, _openai_message(exc), exc.response.headers, self._secret
            ) from None
        except oa.APITimeoutError:
            raise TransientError("request timed out", "timeout") from None
        except oa.APIConnectionError as exc:
            raise TransientError(redact(f"connection error: {exc}", self._secret), "connection") from None
        except (oa.APIResponseValidationError, ValueError) as exc:
            raise TransientError(
                redact(f"malformed response: {exc}", self._secret)[:300], "malformed"
            ) from None
        try:
            choice = response.choices[0]
            text = choice.message.content or ""
        except (AttributeError, IndexError, TypeError):
            raise TransientError("malformed response: no choices", "malformed") from None
        usage = getattr(response, "usage", None)
        return Reply(
            text,
            getattr(usage, "prompt_tokens", None),
            getattr(usage, "completion_tokens", None),
        )


def _openai_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(exc, "message", exc))


class GeminiProvider:
    """Gemini through ``google-genai`` (the Developer API; ``base_url`` for proxies and tests)."""

    name = "gemini"

    def __init__(self, model: str, api_key: str, base_url: str | None, timeout: float):
        from google import genai
        from google.genai import types

        self.model = model
        self._secret = api_key
        self._types = types
        options = types.HttpOptions(
            base_url=base_url,
            timeout=max(1, round(timeout * 1000)),
            retry_options=types.HttpRetryOptions(attempts=1),  # ours are the retries that count
        )
        self.client = genai.Client(api_key=api_key, vertexai=False, http_options=options)
        self._transport = _transport_classes()

    def send(
        self, messages: list[dict[str, str]], schema: dict[str, Any] | None, gen: GenerationSettings
    ) -> Reply:
        from google.genai import errors

        types = self._types
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
        contents = [
            types.Content(
                role="model" if m["role"] == "assistant" else "user", parts=[types.Part(text=m["content"])]
            )
            for m in messages
            if m["role"] != "system"
        ]
        config: dict[str, Any] = {"system_instruction": system, "max_output_tokens": gen.max_tokens}
        if gen.temperature is not None:
            config["temperature"] = gen.temperature
        if gen.seed is not None:
            config["seed"] = gen.seed
        if gen.json_mode != "off":
            config["response_mime_type"] = "application/json"
            if gen.json_mode == "schema" and schema is not None:
                config["response_json_schema"] = schema
        try:
            response = self.client.models.generate_content(
                model=self.model, contents=contents, config=types.GenerateContentConfig(**config)
            )
        except errors.APIError as exc:
            headers = getattr(getattr(exc, "response", None), "headers", None)
            raise _status_error(
                int(exc.code or 0), str(exc.message or exc.status), headers, self._secret
            ) from None
        except self._transport as exc:
            kind = "timeout" if _is_timeout(exc) else "connection"
            raise TransientError(redact(f"{kind}: {type(exc).__name__}", self._secret), kind) from None
        except (ValueError, TypeError) as exc:  # a body that is not the API's JSON
            raise TransientError(
                redact(f"malformed response: {exc}", self._secret)[:300], "malformed"
            ) from None
        try:
            text = response.text or ""
        except (ValueError, AttributeError):
            text = ""
        usage = getattr(response, "usage_metadata", None)
        return Reply(
            text,
            getattr(usage, "prompt_token_count", None),
            getattr(usage, "candidates_token_count", None),
        )


def make_provider(provider: str, model: str, api_key: str, base_url: str | None, timeout: float) -> Provider:
    """The provider object for ``gemini`` or ``openai``."""
    if provider == "gemini":
        return GeminiProvider(model, api_key, base_url, timeout)
    if provider == "openai":
        return OpenAIProvider(model, api_key, base_url, timeout)
    raise InputError(f"unknown provider {provider!r}: choose {' or '.join(PROVIDERS)}")
