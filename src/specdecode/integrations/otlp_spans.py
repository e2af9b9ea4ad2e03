"""Reading OTLP/JSON trace exports: files → :class:`_Span` objects (ids, times, decoded
attributes and events); malformed input raises :class:`~specdecode.errors.InputError` naming
the file, line and field."""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specdecode.errors import InputError


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
