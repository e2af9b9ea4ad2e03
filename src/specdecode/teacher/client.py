"""One reliable chat-model client for teachers and judges.

``LLMClient.complete(messages, schema)`` answers from the SQLite cache when it can, else sends
the request through the provider with

* bounded concurrency (at most ``concurrency`` requests in flight, shared by all threads),
* exponential backoff with jitter on transient failures (429, 5xx, timeouts, connection errors,
  malformed bodies), never sooner than the server's ``Retry-After``,
* a per-run budget of calls (``max_calls``; every attempt sent counts, cache hits do not),

and raises :class:`CallFailed` when an item finally fails, for the caller to record as an
error row. API keys come only from environment variables and never appear in errors or stats.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specdecode.errors import InputError
from specdecode.teacher.cache import ReplyCache, cache_key, default_cache_path
from specdecode.teacher.providers import (
    GenerationSettings,
    PermanentError,
    Provider,
    TransientError,
    make_provider,
    resolve_api_key,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff: attempt n waits about ``base_delay * 2**(n-1)`` (capped, half of it jittered)."""

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 120.0  # a longer Retry-After is cut to this

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        cap = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        wait = cap / 2 + rng.uniform(0, cap / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


@dataclass
class ClientConfig:
    """Where to send requests and how; the key itself is read from the environment."""

    provider: str
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    timeout: float = 120.0
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_calls: int | None = None
    concurrency: int = 8
    cache: bool = True
    cache_path: Path | None = None  # None: default_cache_path()

    def __post_init__(self) -> None:
        if not self.model:
            raise InputError("a model name is needed (--model)")
        if self.concurrency < 1:
            raise InputError("concurrency must be at least 1")
        if self.max_calls is not None and self.max_calls < 0:
            raise InputError("--max-calls must be 0 or more")
        if self.timeout <= 0:
            raise InputError("timeout must be positive")


class CallFailed(Exception):
    """An item that finally failed: ``kind`` is budget, permanent or transient."""

    def __init__(self, message: str, kind: str, attempts: int):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.attempts = attempts


@dataclass
class Completion:
    text: str
    cached: bool
    attempts: int


class CallBudget:
    """A thread-safe counter of calls with an optional ceiling."""

    def __init__(self, limit: int | None):
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.limit is not None and self.used >= self.limit:
                return False
            self.used += 1
            return True


class LLMClient:
    """Cache → budget → bounded, retried provider calls. Thread-safe."""

    def __init__(
        self,
        config: ClientConfig,
        provider: Provider | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ):
        self.config = config
        if provider is None:
            key = resolve_api_key(config.provider, config.api_key_env, config.base_url)
            provider = make_provider(config.provider, config.model, key, config.base_url, config.timeout)
        self.provider = provider
        self.cache = ReplyCache(config.cache_path or default_cache_path()) if config.cache else None
        self.budget = CallBudget(config.max_calls)
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.retries = 0
        self.failures: Counter[str] = Counter()  # error kinds of failed attempts
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def key(self, messages: list[dict[str, str]], schema: dict[str, Any] | None) -> str:
        g = self.config.generation
        return cache_key(
            {
                "provider": self.config.provider,
                "model": self.config.model,
                "base_url": self.config.base_url or "",
                "messages": messages,
                "schema": schema,
                "generation": {
                    "temperature": g.temperature,
                    "seed": g.seed,
                    "max_tokens": g.max_tokens,
                    "json_mode": g.json_mode,
                },
            }
        )

    def complete(self, messages: list[dict[str, str]], schema: dict[str, Any] | None = None) -> Completion:
        """The reply text for ``messages`` (cached, or fetched with retries); raises CallFailed."""
        key = self.key(messages, schema)
        if self.cache is not None:
            text = self.cache.get(key)
            if text is not None:
                return Completion(text, cached=True, attempts=0)
        policy = self.config.retry
        last = "no attempt made"
        for attempt in range(1, policy.max_attempts + 1):
            if not self.budget.take():
                raise CallFailed(
                    f"call budget exhausted ({self.budget.limit} calls); last error: {last}"
                    if attempt > 1
                    else f"call budget exhausted ({self.budget.limit} calls)",
                    "budget",
                    attempt - 1,
                )
            try:
                with self._slots:
                    reply = self.provider.send(messages, schema, self.config.generation)
            except PermanentError as exc:
                self._count(exc.kind)
                raise CallFailed(exc.message, "permanent", attempt) from None
            except TransientError as exc:
                self._count(exc.kind)
                last = exc.message
                if attempt == policy.max_attempts:
                    break
                with self._lock:
                    self.retries += 1
                    wait = policy.delay(attempt, exc.retry_after, self._rng)
                self._sleep(wait)
                continue
            with self._lock:
                self.prompt_tokens += reply.prompt_tokens or 0
                self.completion_tokens += reply.completion_tokens or 0
            if self.cache is not None:
                self.cache.put(key, reply.text, self.config.provider, self.config.model)
            return Completion(reply.text, cached=False, attempts=attempt)
        raise CallFailed(
            f"gave up after {policy.max_attempts} attempts: {last}", "transient", policy.max_attempts
        )

    def _count(self, kind: str) -> None:
        with self._lock:
            self.failures[kind] += 1

    def stats(self) -> dict[str, Any]:
        """Calls made, retries, failed attempts by kind, cache hits and misses (no secrets)."""
        return {
            "provider": self.config.provider,
            "model": self.config.model,
            "calls": self.budget.used,
            "max_calls": self.budget.limit,
            "retries": self.retries,
            "failed_attempts": dict(sorted(self.failures.items())),
            "cache": {
                "enabled": self.cache is not None,
                "hits": self.cache.hits if self.cache else 0,
                "misses": self.cache.misses if self.cache else 0,
            },
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
