# ruff: noqa: E501
"""OTLP/JSON spans → trace records: a real instrumented Pydantic AI run, OpenInference spans,
older attribute names, and bad files."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from specdecode.errors import InputError
from specdecode.integrations.otlp import import_otlp

T0 = 1_700_000_000_000_000_000
TRACE = "0af7651916cd43dd8448eb211c80319c"


def _attrs(**values):
    out = []
    for key, value in values.items():
        key = key.replace("__", ".")
        if isinstance(value, bool):
            out.append({"key": key, "value": {"boolValue": value}})
        elif isinstance(value, int):
            out.append({"key": key, "value": {"intValue": str(value)}})
        else:
            out.append({"key": key, "value": {"stringValue": value}})
    return out


def _span(span_id, name, start_ms, end_ms, parent=None, trace=TRACE, **attributes):
    span = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "startTimeUnixNano": str(T0 + start_ms * 1_000_000),
        "endTimeUnixNano": str(T0 + end_ms * 1_000_000),
        "attributes": _attrs(**attributes),
    }
    if parent:
        span["parentSpanId"] = parent
    return span


def _write(path, *spans):
    request = {
        "resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {"name": "t"}, "spans": list(spans)}]}]
    }
    path.write_text(json.dumps(request) + "\n")
    return path


def test_pydantic_ai_run_exported_as_otlp_json_round_trips(tmp_path):
    pytest.importorskip("pydantic_ai")
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from pydantic_ai import Agent
    from pydantic_ai.capabilities.instrumentation import Instrumentation
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import FunctionModel
    from pydantic_ai.models.instrumented import InstrumentationSettings

    from specdecode.integrations.otel_export import OtlpJsonFileExporter

    tool_seconds: list[float] = []

    def search(query: str) -> str:
        """Search the web."""
        started = time.perf_counter()
        time.sleep(0.03)
        tool_seconds.append(time.perf_counter() - started)
        return f"results for {query}"

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    script = [
        [TextPart("I should search."), ToolCallPart("search", {"query": "capital of France"}, tool_call_id="c1")],
        [ToolCallPart("add", {"a": 2, "b": 3}, tool_call_id="c2"), ToolCallPart("search", {"query": "Paris"}, tool_call_id="c3")],
    ]  # fmt: skip

    def model(messages, info):
        turn = sum(isinstance(m, ModelResponse) for m in messages)
        time.sleep(0.04)
        return ModelResponse(parts=script[turn] if turn < len(script) else [TextPart("Paris, 5")])

    out = tmp_path / "spans.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileExporter(out)))
    settings = InstrumentationSettings(tracer_provider=provider, include_content=True)
    agent = Agent(FunctionModel(model), tools=[search, add], capabilities=[Instrumentation(settings)])
    result = agent.run_sync("What is the capital of France?")
    assert result.output == "Paris, 5"

    records, report = import_otlp(out)
    assert len(records) == 1 and report.traces == 1
    record = records[0]
    assert record.question == "What is the capital of France?"
    assert record.final_answer == "Paris, 5"
    assert [(s.action.tool_name, s.action.arguments, s.observation) for s in record.trace] == [
        ("search", {"query": "capital of France"}, "results for capital of France"),
        ("add", {"a": 2, "b": 3}, "5"),
        ("search", {"query": "Paris"}, "results for Paris"),
    ]
    steps = [s.model_dump() for s in record.trace]
    assert [s["call_id"] for s in steps] == ["c1", "c2", "c3"]
    assert steps[0]["thought"] == "I should search."
    # tool time = the tool span; think time = the model span that emitted the call (0 for its second call)
    search_steps = [steps[0], steps[2]]
    for step, measured in zip(search_steps, tool_seconds):
        assert measured <= step["tool_seconds"] < measured + 0.02
    assert 0.04 <= steps[0]["actor_seconds"] < 0.2 and 0.04 <= steps[1]["actor_seconds"] < 0.2
    assert steps[2]["actor_seconds"] == 0.0
    assert report.linked["call-id"] == 3 and report.timed_steps == 3
    assert not report.missing_arguments and not report.missing_results and not report.missing_questions
    assert set(record.tools) == {"search", "add"}


def test_content_capture_off_is_reported_not_guessed(tmp_path):
    spans = [
        _span("00000000000000a1", "invoke_agent agent", 0, 500),
        _span("00000000000000b1", "chat m", 0, 100, "00000000000000a1", gen_ai__operation__name="chat"),
        _span("00000000000000c1", "execute_tool search", 110, 300, "00000000000000a1",
              gen_ai__operation__name="execute_tool", gen_ai__tool__name="search", gen_ai__tool__call__id="x1"),
    ]  # fmt: skip
    records, report = import_otlp(_write(tmp_path / "s.jsonl", *spans))
    step = records[0].trace[0].model_dump()
    assert step["action"] == {"tool_name": "search", "arguments": {}} and step["arguments_missing"] is True
    assert step["observation"] is None
    assert step["tool_seconds"] == pytest.approx(0.19) and step["actor_seconds"] == pytest.approx(0.1)
    assert report.linked["parent-order"] == 1
    assert report.missing_arguments == [f"{TRACE} step 0: search (x1)"]
    assert len(report.missing_results) == 1 and report.missing_questions == [TRACE]
    assert records[0].model_dump()["question_missing"] is True
    assert any("without arguments" in line for line in report.warnings())


def test_openinference_and_legacy_names(tmp_path):
    other = "1" * 32
    spans = [
        # OpenInference: LLM span emitting a call, TOOL span with input/output values
        _span("00000000000000a1", "agent", 0, 900, openinference__span__kind="AGENT", input__value="How tall is it?"),
        _span("00000000000000b1", "ChatCompletion", 0, 200, "00000000000000a1",
              openinference__span__kind="LLM",
              llm__output_messages__0__message__role="assistant",
              llm__output_messages__0__message__content="Let me check.",
              llm__output_messages__0__message__tool_calls__0__tool_call__id="t1",
              llm__output_messages__0__message__tool_calls__0__tool_call__function__name="lookup",
              llm__output_messages__0__message__tool_calls__0__tool_call__function__arguments='{"item": "tower"}'),
        _span("00000000000000c1", "lookup", 250, 650, "00000000000000a1",
              openinference__span__kind="TOOL", tool__name="lookup",
              tool__parameters='{"type": "object", "properties": {"item": {"type": "string"}}}',
              input__value='{"item": "tower"}', output__value="330 m"),
        # older Pydantic AI names in another trace: "running tool" + tool_arguments / tool_response
        _span("00000000000000d1", "chat gpt", 0, 300, trace=other, gen_ai__operation__name="chat",
              gen_ai__input__messages=json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Sum?"}]}])),
        _span("00000000000000e1", "running tool", 310, 400, trace=other, tool_name="add",
              tool_arguments='{"a": 1}', tool_response="1"),
    ]  # fmt: skip
    records, report = import_otlp(_write(tmp_path / "s.jsonl", *spans))
    by_id = {r.id: r for r in records}
    oi = by_id[TRACE]
    assert oi.question == "How tall is it?"
    step = oi.trace[0].model_dump()
    assert (step["action"], step["observation"], step["thought"]) == (
        {"tool_name": "lookup", "arguments": {"item": "tower"}}, "330 m", "Let me check."
    )  # fmt: skip
    assert step["tool_seconds"] == pytest.approx(0.4) and step["actor_seconds"] == pytest.approx(0.2)
    legacy = by_id[other]
    assert legacy.question == "Sum?"
    assert legacy.trace[0].action.arguments == {"a": 1} and legacy.trace[0].observation == "1"
    assert report.conventions == {"openinference": 1, "genai": 1}


def test_base64_ids_and_one_document(tmp_path):
    span = _span(
        "00000000000000c1",
        "execute_tool s",
        0,
        10,
        gen_ai__tool__name="s",
        gen_ai__tool__call__arguments="{}",
    )
    span["traceId"] = base64.b64encode(bytes.fromhex(TRACE)).decode()
    span["spanId"] = base64.b64encode(bytes.fromhex("00000000000000c1")).decode()
    path = tmp_path / "doc.json"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}, indent=2))
    records, _ = import_otlp(path)
    assert records[0].id == TRACE and records[0].trace[0].action.tool_name == "s"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('{"resourceSpans": []}\n{not json\n', 2, "not JSON"),
        ('{"spans": []}\n', 1, "no resourceSpans"),
        (
            '{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "00000000000000c1"}]}]}]}\n',
            1,
            "traceId",
        ),
        ("", None, "empty file"),
    ],
)
def test_bad_files_raise_input_error(tmp_path, text, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        import_otlp(path)
    assert info.value.line == line and message in info.value.message and str(path) in info.value.message


def test_command_writes_traces_and_bad_file_is_one_line_exit_2(tmp_path):
    good = _write(
        tmp_path / "s.jsonl",
        _span(
            "00000000000000c1",
            "execute_tool s",
            0,
            10,
            gen_ai__tool__name="s",
            gen_ai__tool__call__arguments="{}",
        ),
    )
    out = tmp_path / "traces.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "specdecode", "traces", "import", str(good), "--format", "otlp", "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text().splitlines()[0])["trace"][0]["action"]["tool_name"] == "s"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    proc = subprocess.run(
        [sys.executable, "-m", "specdecode.integrations.otlp", str(bad), "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and f"{bad}:1:" in proc.stderr


def test_import_is_linear_in_spans_per_trace(tmp_path):
    """One trace of model and tool spans, most tools linked by parent and time order (the path that
    was quadratic: 50k spans took 96 s): four times the spans cost about four times the CPU."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from otlp_import import export_line

    seconds = {}
    for n in (2000, 8000):
        path = tmp_path / f"{n}.jsonl"
        path.write_text(export_line(n) + "\n")
        best = []
        for _ in range(2):
            started = time.process_time()
            records, report = import_otlp(path)
            best.append(time.process_time() - started)
        seconds[n] = min(best)
        assert report.spans == n and len(records[0].trace) == n // 2 - 1 + n % 2
    assert seconds[8000] < 8 * seconds[2000], seconds  # quadratic would be 16x


def test_malformed_attribute_values_name_their_field(tmp_path):
    tool = _span("00000000000000c1", "execute_tool s", 0, 10, gen_ai__tool__name="s")
    tool["attributes"].append(
        {"key": "n", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": "x"}}]}}}
    )
    path = _write(tmp_path / "s.jsonl", tool)
    with pytest.raises(InputError) as info:
        import_otlp(path)
    assert info.value.line == 1
    assert (
        "spans[0].attributes[1].value.kvlistValue.values[0].value.intValue: expected an integer"
        in info.value.message
    )
