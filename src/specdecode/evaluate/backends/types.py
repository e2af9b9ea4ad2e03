"""What every generation backend takes and returns, and the helpers they share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from specdecode.errors import InputError
from specdecode.evaluate.stops import cut_at_stop, cut_first_call


@dataclass
class Request:
    """One prompt to answer; ``response_schema``: a JSON schema the answer must follow
    (constrained decoding, e.g. :func:`specdecode.evaluate.constrain.call_schema`)."""

    id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    response_schema: dict[str, Any] | None = None


@dataclass
class Generation:
    """One answer: text, structured tool calls when the backend returns them, cost.

    ``latency``: seconds from the start of the batch this request was answered in to its own
    last token; ``first_token_latency``: to its first token, where the backend knows it;
    ``batch_size``: how many requests shared that batch (1 = a speculator's latency).
    """

    text: str
    latency: float
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[dict[str, Any]] | None = None
    first_token_latency: float | None = None
    batch_size: int = 1
    logprob: float | None = None  # log-probability of the generated tokens, where the backend knows it
    token_ids: list[int] | None = None  # the generated tokens, where the backend knows them
    token_logprobs: list[float] | None = None  # each one's log-probability (as ``logprob``)


@dataclass
class GenerationConfig:
    """Decoding settings shared by every backend.

    ``stop_at_first_call``: the answer ends with its first complete call (next-call mode; see
    :mod:`specdecode.evaluate.stops`); ``stop``: plain stop strings, kept in the text.
    ``seed``: sampling seed when ``temperature`` > 0 (duplicate requests still differ).
    """

    max_new_tokens: int = 256
    stop: Sequence[str] = field(default_factory=tuple)
    stop_at_first_call: bool = False
    repetition_penalty: float = 1.0
    batch_size: int = 16
    temperature: float = 0.0
    seed: int = 0


class Backend(Protocol):
    """What eval and compare need from an engine."""

    name: str
    has_adapter: bool
    identity: dict[str, Any]  # what the answers depend on: model, adapter weights, dtype

    def generate(
        self, requests: Sequence[Request], config: GenerationConfig, adapter: bool
    ) -> list[Generation]:
        """Answers in the order of ``requests``; ``adapter`` selects the LoRA model."""
        ...


def backend_identity(name: str, base_model: str, lora_dir: str | None, dtype: str) -> dict[str, Any]:
    """What a backend's answers depend on (``Backend.identity``): engine, model, adapter, dtype."""
    from specdecode.models import adapter_identity

    return {"backend": name, "base_model": base_model, "adapter": adapter_identity(lora_dir), "dtype": dtype}


def finish_text(text: str, config: GenerationConfig) -> str:
    """The answer as returned: up to the first stop string, and to the end of the first
    complete call when ``stop_at_first_call``."""
    if config.stop:
        text = cut_at_stop(text, tuple(config.stop))
    return cut_first_call(text) if config.stop_at_first_call else text


def shared_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix every prompt shares, leaving each at least one token of its own."""
    limit = min(len(p) for p in prompts) - 1
    first = prompts[0]
    n = 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return n


def base_and_tokenizer(base_model: str, lora_dir: str | None, trust_remote_code: bool) -> tuple[str, Any]:
    """The base model's local path and the tokenizer (the adapter's when it saved one), after
    checking that ``lora_dir`` is a PEFT adapter, before any weights load."""
    from specdecode.models import load_tokenizer, resolve_model

    if lora_dir and not (Path(lora_dir) / "adapter_config.json").is_file():
        raise InputError("not a PEFT adapter directory (no adapter_config.json)", lora_dir)
    base_path = resolve_model(base_model)
    has_tokenizer = lora_dir and (Path(lora_dir) / "tokenizer_config.json").is_file()
    return base_path, load_tokenizer(lora_dir if has_tokenizer else base_path, trust_remote_code)
