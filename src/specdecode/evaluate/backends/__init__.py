"""Generation backends behind one small interface: ``hf`` (reference), ``vllm``, ``openai``.

Every backend takes the same requests (chat messages, optional tool schemas, an optional JSON
schema the answer must follow), renders them with the same prompt builder where it renders at
all, decodes greedily by default, and reports per-request latency and token counts. Base and
adapter answers come from one loaded model (``hf``: PEFT ``disable_adapter``; ``vllm``: a
``LoRARequest``; ``openai``: the served adapter's model name).

One module per engine (:mod:`.hf`, :mod:`.vllm`, :mod:`.openai`) beside the shared
:mod:`.types`; engines import lazily, so ``import specdecode.evaluate.backends`` loads none.
"""

from __future__ import annotations

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
    "Backend",
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


def make_backend(
    kind: str,
    base_model: str,
    lora_dir: str | None = None,
    *,
    base_url: str | None = None,
    lora_name: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    trust_remote_code: bool = False,
    dtype: str = "auto",
    reuse_prefix: bool = False,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> Backend:
    """The backend named ``kind`` (``hf``, ``vllm`` or ``openai``).

    ``dtype``: hf and vllm; ``reuse_prefix``: hf (vLLM always caches prefixes);
    ``chat_template_kwargs``: openai, sent only when given (e.g. ``{"enable_thinking": False}``
    for a vLLM server with Qwen3).
    """
    if kind == "hf":
        from specdecode.evaluate.backends.hf import HFBackend

        return HFBackend(base_model, lora_dir, trust_remote_code, dtype, reuse_prefix=reuse_prefix)
    if kind == "vllm":
        from specdecode.evaluate.backends.vllm import VLLMBackend

        return VLLMBackend(base_model, lora_dir, trust_remote_code, dtype=dtype)
    if kind == "openai":
        from specdecode.evaluate.backends.openai import OpenAIBackend

        if not base_url:
            raise InputError("--backend openai needs --base-url (e.g. http://localhost:8000/v1)")
        return OpenAIBackend(
            base_model,
            base_url,
            lora_name or (Path(lora_dir).name if lora_dir else None),
            api_key_env,
            chat_template_kwargs=chat_template_kwargs,
        )
    raise InputError(f"unknown backend {kind!r}: choose hf, vllm or openai")
