"""Reading OTLP/JSON: export requests (hex or base64 ids, either spelling of field names) into
spans, and the report of what an import kept and could not find."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specdecode.errors import InputError

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
def _key(obj: dict[str, Any], camel: str) -> Any:
    if camel in obj:
        return obj[camel]
    snake = re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()
    return obj.get(snake)


def _any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` → a Python value."""
    if not isinstance(value, dict):
        return value
    for camel, cast in (("stringValue", str), ("boolValue", bool), ("doubleValue", float)):
        got = _key(value, camel)
        if got is not None:
            return cast(got)
    got = _key(value, "intValue")
    if got is not None:
        return int(got)
    got = _key(value, "arrayValue")
    if got is not None:
        return [_any_value(v) for v in (got.get("values") or [])]
    got = _key(value, "kvlistValue")
    if got is not None:
        return _attributes(got.get("values") or [])
    got = _key(value, "bytesValue")
    if got is not None:
        return got
    return None


def _attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = _any_value(item.get("value"))
    return out


def _id(value: Any, size: int) -> str | None:
    """A hex id (OTLP/JSON) or base64 bytes (protobuf JSON) → lower-case hex."""
    if not isinstance(value, str) or not value:
        return None
    if re.fullmatch(r"[0-9a-fA-F]+", value) and len(value) == 2 * size:
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == size else None


def _nanos(value: Any, where: str, path: Path, line: int | None) -> int:
    if isinstance(value, bool) or value is None:
        raise InputError(f"{where}: missing", path, line)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: not a number of nanoseconds: {value!r}", path, line) from None


def _documents(path: Path) -> list[tuple[int | None, Any]]:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", path) from None
    stripped = text.strip()
    if not stripped:
        raise InputError("empty file: no spans", path)
    if "\n" in stripped:  # one document spread over lines (pretty-printed)?
        try:
            return [(None, json.loads(stripped))]
        except json.JSONDecodeError:
            pass
    docs = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            docs.append((number, json.loads(raw)))
        except json.JSONDecodeError as exc:
            raise InputError(f"not JSON ({exc.msg} at column {exc.colno})", path, number) from None
    return docs


def read_spans(path: str | Path) -> list[_Span]:
    """Every span of an OTLP/JSON file."""
    path = Path(path)
    spans: list[_Span] = []
    for line, doc in _documents(path):
        requests = doc if isinstance(doc, list) else [doc]
        for request in requests:
            resource_spans = _key(request, "resourceSpans") if isinstance(request, dict) else None
            if not isinstance(resource_spans, list):
                raise InputError("not an OTLP/JSON trace export: no resourceSpans list", path, line)
            for r, rs in enumerate(resource_spans):
                for s, ss in enumerate(
                    _key(rs, "scopeSpans") or _key(rs, "instrumentationLibrarySpans") or []
                ):
                    for n, raw in enumerate(_key(ss, "spans") or []):
                        where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]"
                        spans.append(_span(raw, where, path, line))
    if not spans:
        raise InputError("no spans in the file", path)
    return spans


def _span(raw: Any, where: str, path: Path, line: int | None) -> _Span:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: a span must be an object", path, line)
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
        (str(e.get("name", "")), _attributes(e.get("attributes")))
        for e in (raw.get("events") or [])
        if isinstance(e, dict)
    ]
    return _Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=_id(_key(raw, "parentSpanId"), 8),
        name=str(raw.get("name", "")),
        start=start,
        end=end,
        attrs=_attributes(raw.get("attributes")),
        events=events,
        line=line,
    )
