"""Stage 2 — trace sources: teacher traces from Gemini (``google-genai``) or any
OpenAI-compatible server (``openai``), and an agent's own logs imported as traces.

* :mod:`.client` — the reliable chat-model client shared with the LLM judges (cache,
  retries with backoff, call budget, bounded concurrency).
* :mod:`.generate` — ``traces generate``; :mod:`.logs` — ``traces import`` / ``export``.
"""

from specdecode.teacher.client import CallFailed, ClientConfig, Completion, LLMClient, RetryPolicy
from specdecode.teacher.providers import GenerationSettings, resolve_api_key

__all__ = [
    "CallFailed",
    "ClientConfig",
    "Completion",
    "GenerationSettings",
    "LLMClient",
    "RetryPolicy",
    "resolve_api_key",
]
