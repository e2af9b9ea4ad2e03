"""OpenTelemetry spans → trace records (``specdecode traces import --format otlp``).

Input: OTLP/JSON trace exports — a file of export requests, one per line (what the OTel
Collector's file exporter and :class:`~specdecode.integrations.otel_export.OtlpJsonFileExporter`
write), or one JSON document; each is ``{"resourceSpans": [{"scopeSpans": [{"spans": [...]}]}]}``.
Span and trace ids may be hex (the OTLP/JSON spec) or base64 (protobuf's ``MessageToJson``);
``snake_case`` field names are accepted too.

One trace record per OTel trace (``id`` = the trace id) that holds a tool or model span:

* **tool spans** — GenAI semantic conventions: ``gen_ai.operation.name = execute_tool`` (span
  ``execute_tool {gen_ai.tool.name}``) with ``gen_ai.tool.name``, ``gen_ai.tool.call.id`` and,
  where content capture is on, ``gen_ai.tool.call.arguments`` / ``gen_ai.tool.call.result``;
  older names ``running tool`` spans with ``tool_arguments`` / ``tool_response`` (Pydantic AI
  before the semconv names), ``gen_ai.tool.arguments`` / ``gen_ai.tool.result``.
  OpenInference: ``openinference.span.kind = TOOL`` with ``tool.name``, ``tool_call.id``,
  arguments in ``tool_call.function.arguments``, ``input.value`` (a JSON object) or
  ``tool.parameters`` (when it holds values, not a JSON Schema), result in ``output.value``;
* **model spans** — ``gen_ai.operation.name`` ``chat`` / ``text_completion`` /
  ``generate_content``, or ``openinference.span.kind = LLM``.

Each tool span is a step, in start order: ``action`` from the tool span (arguments missing
there are taken from the tool call recorded in the model span's output, matched by call id);
``observation`` from the result (else from a later model input's tool response, by call id);
``tool_seconds`` = the tool span's duration; ``actor_seconds`` = the duration of the model
span that emitted the call — found by call id in the model spans' output messages, else the
latest model span that ended before the tool started under the same parent (then anywhere in
the trace). Further calls of one model span get ``actor_seconds`` 0; the model span's text
is the first call's ``thought``. The question is the first user message of the first model
span's input (``gen_ai.input.messages``, ``llm.input_messages.*``, ``gen_ai.prompt*``,
``gen_ai.user.message`` events) or an agent span's ``input.value``. Arguments, results and
questions the spans do not hold are never guessed: they are counted and listed per file in
the :class:`OtlpReport` (a step without arguments has ``"arguments_missing": true``, one
without a result no ``observation``).

Malformed input (bad JSON, no ``resourceSpans``, a span without ids or times) raises
:class:`~specdecode.errors.InputError` with the file and line.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import json
import math
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from specdecode.errors import InputError
from specdecode.records import TraceRecord

TOOL_KINDS = ("execute_tool",)
MODEL_KINDS = ("chat", "text_completion", "generate_content", "completion")
NAME_KEYS = ("gen_ai.tool.name", "tool.name", "tool_call.function.name", "tool_name")
CALL_ID_KEYS = ("gen_ai.tool.call.id", "tool_call.id", "tool_call_id", "gen_ai.tool.call_id")
ARGUMENT_KEYS = (
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.arguments",
    "tool_arguments",
    "tool_call.function.arguments",
)
RESULT_KEYS = ("gen_ai.tool.call.result", "gen_ai.tool.result", "tool_response")
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


@dataclass
class _Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start: int  # ns
    end: int
    attrs: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    line: int | None

    @property
    def seconds(self) -> float:
        return round((self.end - self.start) / 1e9, 6)

    def first(self, keys: tuple[str, ...]) -> Any:
        for key in keys:
            value = self.attrs.get(key)
            if value is not None and value != "":
                return value
        return None


# ---------------------------------------------------------------------- reading
_SNAKE: dict[str, str] = {}


def _key(obj: dict[str, Any], camel: str) -> Any:
    if camel in obj:
        return obj[camel]
    snake = _SNAKE.get(camel)
    if snake is None:
        snake = _SNAKE[camel] = re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()
    return obj.get(snake)


@dataclass(frozen=True)
class _Where:
    """Where a value is: the file, the line and the field (for one-line errors)."""

    path: Path
    line: int | None

    def error(self, field: str, problem: str) -> InputError:
        return InputError(f"{field}: {problem}", self.path, self.line)


def _list(value: Any, field: str, at: _Where) -> list[Any]:
    """``value`` as a list (missing or null: empty); anything else is an error naming the field."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise at.error(field, f"expected a list, got {type(value).__name__}")
    return value


def _object(value: Any, field: str, at: _Where) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise at.error(field, f"expected an object, got {type(value).__name__}")
    return value


class _Bad(Exception):
    """A malformed ``AnyValue``: where below the value (``.intValue``) and what is wrong; the
    caller that knows the field's full name turns it into an InputError."""

    def __init__(self, where: str, problem: str):
        super().__init__(problem)
        self.where, self.problem = where, problem


_INT = re.compile(r"-?\d{1,20}")


def _number(got: Any, camel: str) -> float:
    if isinstance(got, bool) or not isinstance(got, (int, float, str)):
        raise _Bad(f".{camel}", f"expected a number, got {got!r}")
    try:
        number = float(got)
    except ValueError:
        raise _Bad(f".{camel}", f"expected a number, got {got[:40]!r}") from None
    if not math.isfinite(number):
        raise _Bad(f".{camel}", f"{got!r} is not a finite number")
    return number


def _any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` → a Python value; raises :class:`_Bad` for a value of the wrong type."""
    if not isinstance(value, dict):
        return value
    got = _key(value, "stringValue")
    if got is not None:
        return got if isinstance(got, str) else str(got)
    got = _key(value, "boolValue")
    if got is not None:
        if not isinstance(got, bool):
            raise _Bad(".boolValue", f"expected true or false, got {got!r}")
        return got
    got = _key(value, "doubleValue")
    if got is not None:
        return _number(got, "doubleValue")
    got = _key(value, "intValue")
    if got is not None:
        if (
            isinstance(got, bool)
            or not isinstance(got, (int, str))
            or (isinstance(got, str) and not _INT.fullmatch(got.strip()))
        ):
            raise _Bad(".intValue", f"expected an integer, got {str(got)[:40]!r}")
        return int(got)
    got = _key(value, "arrayValue")
    if got is not None:
        if not isinstance(got, dict):
            raise _Bad(".arrayValue", f"expected an object, got {type(got).__name__}")
        values = got.get("values") or []
        if not isinstance(values, list):
            raise _Bad(".arrayValue.values", f"expected a list, got {type(values).__name__}")
        out = []
        for i, v in enumerate(values):
            try:
                out.append(_any_value(v))
            except _Bad as exc:
                raise _Bad(f".arrayValue.values[{i}]{exc.where}", exc.problem) from None
        return out
    got = _key(value, "kvlistValue")
    if got is not None:
        if not isinstance(got, dict):
            raise _Bad(".kvlistValue", f"expected an object, got {type(got).__name__}")
        try:
            return _kv(got.get("values"))
        except _Bad as exc:
            raise _Bad(f".kvlistValue.values{exc.where}", exc.problem) from None
    got = _key(value, "bytesValue")
    if got is not None:
        return got
    return None


def _kv(items: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` list → dict; raises :class:`_Bad` (where below the list) when malformed."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise _Bad("", f"expected a list, got {type(items).__name__}")
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            try:
                out[item["key"]] = _any_value(item.get("value"))
            except _Bad as exc:
                raise _Bad(f"[{i}].value{exc.where}", exc.problem) from None
    return out


def _attributes(items: Any, field: str, at: _Where) -> dict[str, Any]:
    """OTLP attributes → dict; a malformed value is an InputError naming its whole field."""
    try:
        return _kv(items)
    except _Bad as exc:
        raise at.error(f"{field}{exc.where}", exc.problem) from None


def _id(value: Any, size: int) -> str | None:
    """A hex id (OTLP/JSON) or base64 bytes (protobuf JSON) → lower-case hex."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) == 2 * size and _HEX.fullmatch(value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == size else None


_HEX = re.compile(r"[0-9a-fA-F]+")


def _nanos(value: Any, where: str, path: Path, line: int | None) -> int:
    if isinstance(value, bool) or value is None:
        raise InputError(f"{where}: missing", path, line)
    if isinstance(value, str) and not re.fullmatch(r"\s*-?\d{1,20}\s*", value):
        raise InputError(f"{where}: not a number of nanoseconds: {value[:40]!r}", path, line)
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{where}: not a number of nanoseconds: {value!r}", path, line) from None


def _documents(path: Path) -> list[tuple[int | None, Any]]:
    from specdecode.inputs import iter_lines, loads, read_text

    text = read_text(path, "OTLP file")
    stripped = text.strip()
    if not stripped:
        raise InputError("empty file: no spans", path)
    if "\n" in stripped:  # one document spread over lines (pretty-printed)?
        try:
            return [(None, loads(stripped, path))]
        except InputError as exc:
            if not exc.detail.startswith("invalid JSON"):
                raise
    docs = []
    for number, raw in iter_lines(path, "OTLP file"):
        try:
            docs.append((number, loads(raw, path, number)))
        except InputError as exc:
            if exc.detail.startswith("invalid JSON: "):
                raise InputError(
                    f"not JSON ({exc.detail.removeprefix('invalid JSON: ')})", path, number
                ) from None
            raise
    return docs


def read_spans(path: str | Path) -> list[_Span]:
    """Every span of an OTLP/JSON file."""
    from specdecode.inputs import bulk

    with bulk():
        return _read_spans(Path(path))


def _read_spans(path: Path) -> list[_Span]:
    spans: list[_Span] = []
    for line, doc in _documents(path):
        at = _Where(path, line)
        requests = doc if isinstance(doc, list) else [doc]
        for request in requests:
            resource_spans = _key(request, "resourceSpans") if isinstance(request, dict) else None
            if not isinstance(resource_spans, list):
                raise InputError("not an OTLP/JSON trace export: no resourceSpans list", path, line)
            for r, rs in enumerate(resource_spans):
                spans.extend(_resource_spans(rs, f"resourceSpans[{r}]", at))
    if not spans:
        raise InputError("no spans in the file", path)
    return spans


def _resource_spans(rs: Any, field: str, at: _Where) -> list[_Span]:
    """The spans of one ``resourceSpans`` entry (OTLP 1.x ``scopeSpans``, or the older
    ``instrumentationLibrarySpans``)."""
    rs = _object(rs, field, at)
    scope = "scopeSpans" if _key(rs, "scopeSpans") is not None else "instrumentationLibrarySpans"
    spans = []
    for s, ss in enumerate(_list(_key(rs, scope), f"{field}.{scope}", at)):
        ss = _object(ss, f"{field}.{scope}[{s}]", at)
        for n, raw in enumerate(_list(_key(ss, "spans"), f"{field}.{scope}[{s}].spans", at)):
            spans.append(_span(raw, f"{field}.scopeSpans[{s}].spans[{n}]", at.path, at.line))
    return spans


def _span(raw: Any, where: str, path: Path, line: int | None) -> _Span:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: a span must be an object", path, line)
    at = _Where(path, line)
    trace_id, span_id = _id(_key(raw, "traceId"), 16), _id(_key(raw, "spanId"), 8)
    if trace_id is None:
        raise InputError(f"{where}.traceId: missing or not a 16-byte id", path, line)
    if span_id is None:
        raise InputError(f"{where}.spanId: missing or not an 8-byte id", path, line)
    start = _nanos(_key(raw, "startTimeUnixNano"), f"{where}.startTimeUnixNano", path, line)
    end = _nanos(_key(raw, "endTimeUnixNano"), f"{where}.endTimeUnixNano", path, line)
    if end < start:
        raise InputError(f"{where}: ends before it starts", path, line)
    events = [
        (str(e.get("name", "")), _attributes(e.get("attributes"), f"{where}.events[{i}].attributes", at))
        for i, e in enumerate(_list(raw.get("events"), f"{where}.events", at))
        if isinstance(e, dict)
    ]
    return _Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=_id(_key(raw, "parentSpanId"), 8),
        name=str(raw.get("name", "")),
        start=start,
        end=end,
        attrs=_attributes(raw.get("attributes"), f"{where}.attributes", at),
        events=events,
        line=line,
    )


# ---------------------------------------------------------------------- span semantics
def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _is_tool(span: _Span) -> str | None:
    """The convention a tool span follows (``genai``/``openinference``), or None."""
    if str(span.attrs.get("openinference.span.kind", "")).upper() == "TOOL":
        return "openinference"
    if span.attrs.get("gen_ai.operation.name") in TOOL_KINDS or span.name.startswith("execute_tool"):
        return "genai"
    if span.name.startswith("running tool") or (
        "gen_ai.tool.name" in span.attrs and "gen_ai.operation.name" not in span.attrs
    ):
        return "genai"
    return None


def _is_model(span: _Span) -> bool:
    if str(span.attrs.get("openinference.span.kind", "")).upper() == "LLM":
        return True
    return span.attrs.get("gen_ai.operation.name") in MODEL_KINDS


def _tool_name(span: _Span) -> str | None:
    name = span.first(NAME_KEYS)
    if isinstance(name, str) and name.strip():
        return name.strip()
    for prefix in ("execute_tool ", "running tool: ", "running tool "):
        if span.name.startswith(prefix) and span.name[len(prefix) :].strip():
            return span.name[len(prefix) :].strip()
    return None


def _looks_like_schema(value: Any) -> bool:
    return isinstance(value, dict) and "properties" in value and value.get("type") == "object"


def _tool_arguments(span: _Span) -> dict[str, Any] | None:
    value = _json(span.first(ARGUMENT_KEYS))
    if isinstance(value, dict):
        return value
    if str(span.attrs.get("openinference.span.kind", "")).upper() == "TOOL":
        for key in ("input.value", "tool.parameters"):
            value = _json(span.attrs.get(key))
            if isinstance(value, dict) and not _looks_like_schema(value):
                return value
    return None


def _tool_result(span: _Span) -> str | None:
    value = span.first(RESULT_KEYS)
    if value is None and str(span.attrs.get("openinference.span.kind", "")).upper() == "TOOL":
        value = span.attrs.get("output.value")
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(p) for p in content if _text_of(p))
    if isinstance(content, dict) and content.get("type") in (None, "text", "input_text", "output_text"):
        return str(content.get("content") or content.get("text") or "")
    return ""


def _messages(span: _Span, direction: str) -> list[dict[str, Any]]:
    """A model span's input or output messages, normalised to
    ``{"role", "text", "calls": [(id, name, arguments)], "responses": {id: text}}``."""
    out: list[dict[str, Any]] = []
    genai = _json(span.attrs.get(f"gen_ai.{direction}.messages"))
    if isinstance(genai, list):
        for message in genai:
            if not isinstance(message, dict):
                continue
            parts = message.get("parts")
            if parts is None:  # OpenAI-like {"role", "content", "tool_calls"}
                parts = [{"type": "text", "content": message.get("content")}]
                for call in message.get("tool_calls") or []:
                    fn = call.get("function") or call
                    parts.append(
                        {
                            "type": "tool_call",
                            "id": call.get("id"),
                            "name": fn.get("name"),
                            "arguments": fn.get("arguments"),
                        }
                    )
            out.append(_normalise(message.get("role"), parts))
    prefix = "llm.input_messages" if direction == "input" else "llm.output_messages"
    indexed = _indexed(span.attrs, prefix)
    for index in sorted(indexed):
        fields = indexed[index]
        parts: list[dict[str, Any]] = [{"type": "text", "content": fields.get("message.content")}]
        calls = _indexed(fields, "message.tool_calls")
        for c in sorted(calls):
            parts.append(
                {
                    "type": "tool_call",
                    "id": calls[c].get("tool_call.id"),
                    "name": calls[c].get("tool_call.function.name"),
                    "arguments": calls[c].get("tool_call.function.arguments"),
                }
            )
        if fields.get("message.role") == "tool":
            parts = [
                {
                    "type": "tool_call_response",
                    "id": fields.get("message.tool_call_id"),
                    "result": fields.get("message.content"),
                }
            ]
        out.append(_normalise(fields.get("message.role"), parts))
    legacy = "gen_ai.prompt" if direction == "input" else "gen_ai.completion"
    indexed = _indexed(span.attrs, legacy)
    for index in sorted(indexed):
        fields = indexed[index]
        parts = [{"type": "text", "content": fields.get("content")}]
        calls = _indexed(fields, "tool_calls")
        for c in sorted(calls):
            parts.append({"type": "tool_call", **{k: calls[c].get(k) for k in ("id", "name", "arguments")}})
        out.append(_normalise(fields.get("role"), parts))
    if direction == "input":
        for name, attrs in span.events:
            if name == "gen_ai.user.message":
                out.append(_normalise("user", [{"type": "text", "content": attrs.get("content")}]))
    return out


@functools.lru_cache(maxsize=64)
def _prefix_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(re.escape(prefix) + r"\.(\d+)\.(.+)")


def _indexed(attrs: dict[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """``prefix.{i}.rest`` attributes → ``{i: {rest: value}}``."""
    out: dict[int, dict[str, Any]] = defaultdict(dict)
    pattern = _prefix_pattern(prefix)
    head = prefix + "."
    for key, value in attrs.items():
        match = pattern.fullmatch(key) if key.startswith(head) else None
        if match:
            out[int(match.group(1))][match.group(2)] = value
    return out


def _normalise(role: Any, parts: Any) -> dict[str, Any]:
    texts, calls, responses = [], [], {}
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "tool_call":
            calls.append((part.get("id"), part.get("name"), _json(part.get("arguments"))))
        elif kind == "tool_call_response":
            result = part.get("result", part.get("response"))
            if result is not None:
                responses[str(part.get("id"))] = (
                    result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
                )
        else:
            text = _text_of(part)
            if text:
                texts.append(text)
    return {"role": role, "text": "\n".join(texts).strip(), "calls": calls, "responses": responses}


def _question(models: list[_Span], spans: list[_Span]) -> str | None:
    for span in models:
        for message in _messages(span, "input"):
            if message["role"] == "user" and message["text"]:
                return message["text"]
    for span in sorted(spans, key=lambda s: s.start):  # an agent / chain span's input
        kind = str(span.attrs.get("openinference.span.kind", "")).upper()
        if kind in ("AGENT", "CHAIN") and isinstance(span.attrs.get("input.value"), str):
            value = _json(span.attrs["input.value"])
            if isinstance(value, str) and value.strip():
                return value.strip()
            if isinstance(value, dict):
                for key in ("input", "question", "query", "prompt"):
                    if isinstance(value.get(key), str) and value[key].strip():
                        return value[key].strip()
    return None


# ---------------------------------------------------------------------- assembly
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


# ---------------------------------------------------------------------- command
def import_command(files: list[Path], out: Path) -> list[OtlpReport]:
    """Import OTLP/JSON files into one trace JSONL; report each file (stderr)."""
    from specdecode.cli._common import done, warn
    from specdecode.inputs import bulk
    from specdecode.jsonl import write_jsonl
    from specdecode.outputs import guard

    guard(inputs=files, files={"--out": out})
    records: list[TraceRecord] = []
    reports = []
    with bulk():
        for path in files:
            got, report = import_otlp(path)
            records.extend(got)
            reports.append(report)
        write_jsonl(out, records)
    for report in reports:
        for line in report.warnings():
            warn(line)
    spans, steps = sum(r.spans for r in reports), sum(r.steps for r in reports)
    timed = sum(r.timed_steps for r in reports)
    done(f"{spans} spans → {len(records)} traces, {steps} steps ({timed} timed) → {out}")
    return reports


def _typer_app() -> Any:
    app = typer.Typer(help="OpenTelemetry spans → traces.", no_args_is_help=True, add_completion=False)

    @app.command("import")
    def import_otlp_cmd(
        files: Annotated[
            list[Path], typer.Argument(help="OTLP/JSON trace files (export lines or one document).")
        ],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output trace JSONL (written atomically).")],
    ) -> None:
        """Turn OpenTelemetry GenAI / OpenInference spans into traces with per-step timings."""
        import_command(files, out)

    return app


def main(argv: list[str] | None = None) -> None:
    """``python -m specdecode.integrations.otlp FILE... --out traces.jsonl``."""
    import click
    from rich.console import Console
    from rich.markup import escape

    try:
        _typer_app()(argv if argv is not None else sys.argv[1:], standalone_mode=False)
    except InputError as exc:
        Console(stderr=True).print(f"[red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
        raise SystemExit(InputError.exit_code) from None
    except click.exceptions.NoArgsIsHelpError:
        raise SystemExit(0) from None
    except click.exceptions.ClickException as exc:
        message = exc.format_message().replace("\n", " ")
        Console(stderr=True).print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
