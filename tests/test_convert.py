"""Conversion of traces to the three chat forms, through the one prompt builder."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from specdecode import ChatRecord, TraceRecord, load_registry, read_records
from specdecode.data import convert, synthesize
from specdecode.prompts import PromptOptions, next_call_messages, render_tools


def test_steps_form_has_one_example_per_call_with_the_gold_prefix() -> None:
    traces = synthesize(30, seed=2, registry="tools17")
    chats = convert(traces, "steps", load_registry("tools17"))
    assert len(chats) == sum(len(t.trace) for t in traces)
    trace = next(t for t in traces if len(t.trace) >= 3)
    steps = [c for c in chats if c.source_id == trace.id]
    assert [c.step for c in steps] == list(range(len(trace.trace)))
    third = steps[2]
    user = third.messages[1].content
    assert trace.question in user
    assert json.dumps(trace.trace[0].action.arguments)[1:-1] in user
    assert trace.trace[1].observation.split()[0] in user
    target = json.loads(third.messages[-1].content)
    assert target == {
        "tool_name": trace.trace[2].action.tool_name,
        "arguments": trace.trace[2].action.arguments,
    }
    # only the offered tools are listed: the distractors yes, the rest of the registry no
    system = third.messages[0].content
    offered = set(trace.tools)
    for name in load_registry("tools17").names:
        assert (f"- {name}(" in system) == (name in offered)


def test_native_form_carries_tool_calls_results_and_schemas() -> None:
    [trace] = synthesize(1, seed=4, registry="tools4")
    [chat] = convert([trace], "native", load_registry("tools4"))
    calls = [m for m in chat.messages if m.role == "assistant"]
    assert [m.tool_calls[0].function.name for m in calls] == [s.action.tool_name for s in trace.trace]
    assert sum(m.role == "tool" for m in chat.messages) == sum(bool(s.observation) for s in trace.trace)
    assert {t["function"]["name"] for t in chat.tools} == {
        "search",
        "wikipedia",
        "calculator",
        "final_answer",
    }
    ChatRecord.model_validate(chat.model_dump())


def test_plain_form_is_the_whole_trace_as_json() -> None:
    [trace] = synthesize(1, seed=4)
    [chat] = convert([trace], "plain", load_registry("tools4"))
    body = json.loads(chat.messages[-1].content)
    assert body["final_answer"] == trace.final_answer
    assert [s["action"]["tool_name"] for s in body["trace"]] == [s.action.tool_name for s in trace.trace]
    assert "- calculator(expression: string)" in chat.messages[0].content


def test_tool_rendering_compact_and_json() -> None:
    tools = load_registry("tools17").subset(["wiki.get_revisions", "final_answer"])
    compact = render_tools(tools)
    assert "- wiki.get_revisions(title: string, start?: string, end?: string)" in compact
    schemas = json.loads(render_tools(tools, "json"))
    assert schemas[0]["function"]["parameters"]["required"] == ["title"]
    long = next_call_messages("q", tools, options=PromptOptions(tool_style="json"))
    assert len(long[0]["content"]) > len(next_call_messages("q", tools)[0]["content"])


def test_compact_tools_show_first_sentence_and_enums() -> None:
    from specdecode.records import ToolSpec

    spec = ToolSpec(
        name="cancel_order",
        description="Cancel a pending order. The agent must ask first.\nSecond line. More rules.",
        parameters={
            "type": "object",
            "properties": {
                "order_id": {"type": "string"},
                "reason": {"enum": ["mistake", "no longer needed"]},
            },
            "required": ["order_id", "reason"],
        },
    )
    line = render_tools([spec])
    assert (
        line
        == '- cancel_order(order_id: string, reason: "mistake"|"no longer needed") — Cancel a pending order.'
    )
    assert "The agent must ask first" in render_tools([spec], "json")  # the full text on request


def test_convert_cli_all_forms_validate(tmp_path: Path) -> None:
    traces = tmp_path / "t.jsonl"
    run_cli("data", "synth", "--n", "12", "--registry", "tools17", "--out", traces, check=True)
    for form in ("plain", "native", "steps", "conversation"):
        out = tmp_path / f"{form}.jsonl"
        run_cli("data", "convert", traces, "--form", form, "--registry", "tools17", "--out", out, check=True)
        run_cli("data", "validate", out, "--kind", "chat", check=True)
        assert len(read_records(out, ChatRecord)) >= 12


def test_empty_trace_converts_in_every_form(tmp_path: Path) -> None:
    """A trace with no calls and a final answer is valid (regression: native form IndexError)."""
    empty = {"id": "e1", "question": "What is 2 + 2?", "trace": [], "final_answer": "4"}
    [record] = read_records_from(tmp_path, [empty])
    registry = load_registry("tools4")
    [native] = convert([record], "native", registry)
    assert [m.role for m in native.messages] == ["system", "user", "assistant"]
    assert native.messages[-1].content == "4"
    assert convert([record], "steps", registry) == convert([record], "conversation", registry) == []
    traces = tmp_path / "empty.jsonl"
    traces.write_text(json.dumps(empty) + "\n", encoding="utf-8")
    out = tmp_path / "native.jsonl"
    run_cli("data", "convert", traces, "--form", "native", "--out", out, check=True)
    assert read_records(out, ChatRecord)[0].messages[-1].content == "4"


def read_records_from(tmp_path: Path, rows: list[dict]) -> list[TraceRecord]:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return read_records(path, TraceRecord)
