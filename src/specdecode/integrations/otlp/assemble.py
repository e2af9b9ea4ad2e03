"""Spans of one trace → one trace record: steps in start order with their timings."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from specdecode.errors import InputError
from specdecode.integrations.otlp.semantics import (
    _is_model,
    _is_tool,
    _json,
    _messages,
    _question,
    _tool_arguments,
    _tool_name,
    _tool_result,
)
from specdecode.integrations.otlp.spans import CALL_ID_KEYS, NO_QUESTION, OtlpReport, _Span, read_spans
from specdecode.records import TraceRecord


# ---------------------------------------------------------------------- assembly
def _trace_record(trace_id: str, spans: list[_Span], report: OtlpReport) -> TraceRecord | None:
    tools = sorted((s for s in spans if _is_tool(s)), key=lambda s: (s.start, s.end))
    models = sorted((s for s in spans if _is_model(s) and not _is_tool(s)), key=lambda s: (s.start, s.end))
    if not tools and not models:
        report.skipped_traces += 1
        return None
    outputs = {id(m): _messages(m, "output") for m in models}
    by_call: dict[str, tuple[_Span, tuple[Any, Any, Any]]] = {}
    responses: dict[str, str] = {}
    offered: list[str] = []
    for model in models:
        for message in outputs[id(model)]:
            for call in message["calls"]:
                if call[0]:
                    by_call.setdefault(str(call[0]), (model, call))
        for message in _messages(model, "input"):
            responses.update(message["responses"])
        definitions = _json(model.attrs.get("gen_ai.tool.definitions"))
        for tool in definitions if isinstance(definitions, list) else []:
            name = (tool.get("function") or tool).get("name") if isinstance(tool, dict) else None
            if isinstance(name, str) and name not in offered:
                offered.append(name)

    question = _question(models, spans)
    if question is None:
        report.missing_questions.append(trace_id)
    steps: list[dict[str, Any]] = []
    used_models: set[int] = set()
    for k, span in enumerate(tools):
        report.conventions[_is_tool(span) or "genai"] += 1
        call_id = span.first(CALL_ID_KEYS)
        call_id = str(call_id) if call_id is not None else None
        name = _tool_name(span)
        arguments = _tool_arguments(span)
        model, how = None, "none"
        if call_id and call_id in by_call:
            model, recorded = by_call[call_id]
            how = "call-id"
            name = name or recorded[1]
            if arguments is None and isinstance(recorded[2], dict):
                arguments = recorded[2]
        if model is None:
            model, how = _preceding_model(span, models)
        report.linked[how] += 1
        where = f"{trace_id} step {k}: {name or '?'}" + (f" ({call_id})" if call_id else "")
        if name is None:
            raise InputError(
                f"trace {trace_id}: tool span {span.span_id} has no tool name", report.path, span.line
            )
        step: dict[str, Any] = {"thought": "", "action": {"tool_name": name, "arguments": arguments or {}}}
        if arguments is None:
            step["arguments_missing"] = True
            report.missing_arguments.append(where)
        result = _tool_result(span)
        if result is None and call_id:
            result = responses.get(call_id)
        if result is None:
            report.missing_results.append(where)
        else:
            step["observation"] = result
        if call_id:
            step["call_id"] = call_id
        step["tool_seconds"] = span.seconds
        if model is None:
            report.unlinked.append(where)
        else:
            first = id(model) not in used_models
            used_models.add(id(model))
            step["actor_seconds"] = model.seconds if first else 0.0
            if first:
                step["thought"] = "\n".join(m["text"] for m in outputs[id(model)] if m["text"]).strip()
            report.timed_steps += 1
        steps.append(step)
    final_answer = None
    if models:
        last = max(models, key=lambda m: m.end)
        if not tools or last.start >= tools[-1].end:
            texts = [m["text"] for m in outputs[id(last)] if m["text"] and not m["calls"]]
            final_answer = "\n".join(texts) or None
    record: dict[str, Any] = {
        "id": trace_id,
        "question": question or NO_QUESTION,
        "trace": steps,
        "final_answer": final_answer,
        "source": "otlp",
    }
    if question is None:
        record["question_missing"] = True
    if offered:
        record["tools"] = offered
    report.steps += len(steps)
    return TraceRecord.model_validate(record)


def _preceding_model(tool: _Span, models: list[_Span]) -> tuple[_Span | None, str]:
    """The model span that emitted ``tool``'s call, by parent and order."""
    before = [m for m in models if m.end <= tool.start]
    siblings = [m for m in before if m.parent_id == tool.parent_id]
    if siblings:
        return max(siblings, key=lambda m: m.end), "parent-order"
    parent = next((m for m in models if m.span_id == tool.parent_id), None)
    if parent is not None:
        return parent, "parent-order"
    if before:
        return max(before, key=lambda m: m.end), "trace-order"
    return None, "none"


def import_otlp(path: str | Path) -> tuple[list[TraceRecord], OtlpReport]:
    """One OTLP/JSON file → (trace records in first-span order, what was missing)."""
    path = Path(path)
    report = OtlpReport(path=str(path))
    spans = read_spans(path)
    report.spans = len(spans)
    by_trace: dict[str, list[_Span]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    records = []
    for trace_id, members in sorted(by_trace.items(), key=lambda kv: min(s.start for s in kv[1])):
        record = _trace_record(trace_id, members, report)
        if record is not None:
            records.append(record)
    report.traces = len(records)
    return records, report
