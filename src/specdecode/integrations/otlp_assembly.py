"""Spans → trace records: one record per OTel trace, each tool span a step linked to the model
span that emitted its call; :class:`OtlpReport` counts what the spans did not say."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specdecode.errors import InputError
from specdecode.integrations.otlp_semantics import (
    CALL_ID_KEYS,
    _is_model,
    _is_tool,
    _json,
    _messages,
    _question,
    _tool_arguments,
    _tool_name,
    _tool_result,
)
from specdecode.integrations.otlp_spans import _Span, read_spans
from specdecode.records import TraceRecord

NO_QUESTION = "(no question in the spans)"


@dataclass
class OtlpReport:
    """What one file held, and what its spans did not say."""

    path: str
    spans: int = 0
    traces: int = 0
    steps: int = 0
    timed_steps: int = 0  # steps with both actor_seconds and tool_seconds
    conventions: Counter = field(default_factory=Counter)  # genai / openinference tool spans
    linked: Counter = field(default_factory=Counter)  # call-id / parent-order / trace-order / none
    missing_arguments: list[str] = field(default_factory=list)  # "trace-id step k: tool (call id)"
    missing_results: list[str] = field(default_factory=list)
    missing_questions: list[str] = field(default_factory=list)  # trace ids
    unlinked: list[str] = field(default_factory=list)  # steps without a model span
    skipped_traces: int = 0  # traces without tool or model spans

    def summary(self) -> str:
        return (
            f"{self.path}: {self.spans} spans → {self.traces} traces, {self.steps} steps "
            f"({self.timed_steps} timed); missing arguments {len(self.missing_arguments)}, "
            f"results {len(self.missing_results)}, questions {len(self.missing_questions)}, "
            f"no model span {len(self.unlinked)}"
        )

    def warnings(self, limit: int = 5) -> list[str]:
        out = []
        for what, items in (
            ("calls without arguments", self.missing_arguments),
            ("calls without results", self.missing_results),
            ("traces without a question", self.missing_questions),
            ("calls without a model span (no actor_seconds)", self.unlinked),
        ):
            if items:
                more = f", … {len(items) - limit} more" if len(items) > limit else ""
                out.append(f"{self.path}: {len(items)} {what}: {', '.join(items[:limit])}{more}")
        return out


def _trace_record(trace_id: str, spans: list[_Span], report: OtlpReport) -> TraceRecord | None:
    tools = sorted((s for s in spans if _is_tool(s)), key=lambda s: (s.start, s.end))
    models = sorted((s for s in spans if _is_model(s) and not _is_tool(s)), key=lambda s: (s.start, s.end))
    if not tools and not models:
        report.skipped_traces += 1
        return None
    outputs = {id(m): _messages(m, "output") for m in models}
    index = _Models(models)
    by_call: dict[str, tuple[_Span, tuple[Any, Any, Any]]] = {}
    responses: dict[str, str] = {}
    offered: dict[str, None] = {}  # insertion-ordered set
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
            if isinstance(name, str):
                offered.setdefault(name)

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
            model, how = index.preceding(span)
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
        record["tools"] = list(offered)
    report.steps += len(steps)
    return TraceRecord.model_validate(record)


class _Ends:
    """Spans ordered by end time: the latest to end by a time, in ``O(log n)``."""

    def __init__(self, spans: list[tuple[int, _Span]]):
        ordered = sorted(spans, key=lambda item: (item[1].end, item[0]))  # ties: the earlier span
        self.ends = [span.end for _, span in ordered]
        self.spans = [span for _, span in ordered]

    def latest_by(self, time: int) -> _Span | None:
        """Of the spans that ended by ``time``, the one that ended last (the first such span in
        start order when several end together)."""
        j = bisect.bisect_right(self.ends, time)
        if j == 0:
            return None
        return self.spans[bisect.bisect_left(self.ends, self.ends[j - 1])]


class _Models:
    """The model spans of one trace, indexed for :meth:`preceding` (linear in spans overall)."""

    def __init__(self, models: list[_Span]):
        numbered = list(enumerate(models))
        self.all = _Ends(numbered)
        by_parent: dict[str | None, list[tuple[int, _Span]]] = defaultdict(list)
        for item in numbered:
            by_parent[item[1].parent_id].append(item)
        self.by_parent = {parent: _Ends(items) for parent, items in by_parent.items()}
        self.by_id: dict[str, _Span] = {}
        for model in models:
            self.by_id.setdefault(model.span_id, model)

    def preceding(self, tool: _Span) -> tuple[_Span | None, str]:
        """The model span that emitted ``tool``'s call: the latest sibling (same parent) that ended
        before the tool started, else the tool's parent if it is a model span, else the latest
        model span of the trace that ended before it."""
        siblings = self.by_parent.get(tool.parent_id)
        sibling = siblings.latest_by(tool.start) if siblings is not None else None
        if sibling is not None:
            return sibling, "parent-order"
        parent = self.by_id.get(tool.parent_id) if tool.parent_id is not None else None
        if parent is not None:
            return parent, "parent-order"
        before = self.all.latest_by(tool.start)
        if before is not None:
            return before, "trace-order"
        return None, "none"


def import_otlp(path: str | Path) -> tuple[list[TraceRecord], OtlpReport]:
    """One OTLP/JSON file → (trace records in first-span order, what was missing)."""
    from specdecode.inputs import bulk

    with bulk():
        return _import_otlp(Path(path))


def _import_otlp(path: Path) -> tuple[list[TraceRecord], OtlpReport]:
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
