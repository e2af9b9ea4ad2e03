"""Tool-call extraction from free text: one parser for every format a model may answer in.

Formats, tried in this order (the first that yields a call wins):

* ``tool_calls`` — OpenAI-style structured calls (from an API response, or as JSON in the text)
* ``hermes``     — Qwen/Hermes ``<tool_call>{"name": …, "arguments": …}</tool_call>`` blocks
* ``json``       — the trace JSON (object or array, with or without code fences) or single call
                   objects ``{"tool_name"|"name": …, "arguments": …}``; truncated tails tolerated
* ``react``      — ``Action: name`` + ``Action Input: {…}``
* ``python``     — ``name(arg=…)`` calls

Unknown tool names are kept (and counted by the metrics), never dropped. An explicit answer
without a call (``{"trace": [], …}``, ``Final Answer: …``) parses as ``no_call``. A single call
object cut off by the token budget (inside a long argument, say) is closed and parsed as
``json_truncated`` when its tool name was written whole.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

from specdecode.records import ToolCall


@dataclass
class Parsed:
    """The calls found in one output, and how they were found."""

    calls: list[ToolCall] = field(default_factory=list)
    format: str = "none"
    no_call: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.calls) or self.no_call


_FENCE = re.compile(r"```(?:json|JSON|python|tool_call)?\s*\n?(.*?)(?:```|$)", re.S)
_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_REACT = re.compile(
    r"Action\s*:\s*([^\n]+?)\s*\n+\s*Action\s*Input\s*:\s*(.*?)(?=\n\s*(?:Observation|Thought|Action)\s*:|$)",
    re.S | re.I,
)
_PY_CALL = re.compile(r"(?<![\w.])([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)\s*\(")
_FINAL = re.compile(r"final\s*answer\s*:", re.I)


def _arguments(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {"input": value}
    if isinstance(value, dict):
        return value
    return {} if value is None else {"input": value}


def _call_from(obj: Any) -> ToolCall | None:
    """A call from one JSON object, in any of the known shapes."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict) and obj["function"].get("name"):
        return ToolCall(
            tool_name=str(obj["function"]["name"]), arguments=_arguments(obj["function"].get("arguments"))
        )
    for key in ("tool_name", "name", "tool"):
        name = obj.get(key)
        if isinstance(name, str) and name.strip():
            args = obj.get("arguments", obj.get("parameters", obj.get("args", obj.get("input"))))
            return ToolCall(tool_name=name, arguments=_arguments(args))
    return None


def _walk(obj: Any, out: list[ToolCall]) -> None:
    """Collect calls from a decoded JSON value in reading order."""
    if isinstance(obj, list):
        for item in obj:
            _walk(item, out)
        return
    if not isinstance(obj, dict):
        return
    call = _call_from(obj)
    if call is not None:
        out.append(call)
        return
    for key in ("action", "trace", "tool_calls", "steps", "calls"):
        if key in obj:
            _walk(obj[key], out)


def _json_values(text: str) -> list[tuple[int, Any]]:
    """Every complete JSON object/array in ``text`` (outermost first), tolerating a truncated tail.

    A truncated outer value cannot be decoded, so the scan goes on inside it and recovers the
    complete values it holds.
    """
    decoder = json.JSONDecoder()
    found, pos = [], 0
    while True:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            return found
        start = min(starts)
        try:
            value, pos = decoder.raw_decode(text, start)
            found.append((start, value))
        except json.JSONDecodeError:
            pos = start + 1  # truncated or not JSON: look inside it


def close_truncated(text: str) -> str | None:
    """A JSON object cut off by a token budget, closed: the open string ended, open brackets shut.

    Only for text whose first ``{`` never closes (a complete object needs no repair). Returns
    None when there is nothing to close.
    """
    start = text.find("{")
    if start < 0:
        return None
    stack: list[str] = []
    in_string = escaped = False
    for char in text[start:]:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]":
            if not stack:
                return None
            stack.pop()
            if not stack:
                return None  # the first object closed: not truncated
    if not stack:
        return None
    body = text[start:].rstrip()
    if escaped:
        body = body[:-1]
    if in_string:
        body += '"'
    body = re.sub(r"[,:]\s*$", "", body)  # a dangling separator
    return body + "".join(reversed(stack))


def _from_json_text(text: str) -> Parsed:
    calls: list[ToolCall] = []
    explicit_none = False
    for _, value in _json_values(text):
        before = len(calls)
        _walk(value, calls)
        if (
            len(calls) == before
            and isinstance(value, dict)
            and (value.get("trace") == [] or ("final_answer" in value and not value.get("trace")))
        ):
            explicit_none = True
    return Parsed(calls, "json", no_call=explicit_none and not calls)


def _from_hermes(text: str) -> Parsed:
    """Calls of ``<tool_call>`` blocks. Each block's JSON is decoded from its first ``{`` (so a
    ``</tool_call>`` inside a string argument does not end it); a block whose JSON is cut off
    falls back to what lies before its closing tag."""
    calls: list[ToolCall] = []
    decoder = json.JSONDecoder()
    pos = 0
    while (tag := text.find("<tool_call>", pos)) >= 0:
        brace = text.find("{", tag)
        if brace >= 0 and text[tag + len("<tool_call>") : brace].strip():
            brace = -1  # something else than the call's JSON follows the tag
        try:
            if brace < 0:
                raise json.JSONDecodeError("no JSON after the tag", text, tag)
            value, pos = decoder.raw_decode(text, brace)
        except json.JSONDecodeError:
            block = _HERMES.match(text, tag)
            for _, value in _json_values(block.group(1) if block else "")[:1]:
                _walk(value, calls)
            pos = block.end() if block else len(text)
            continue
        _walk(value, calls)
    return Parsed(calls, "hermes")


def _from_react(text: str) -> Parsed:
    calls = []
    for name, raw in _REACT.findall(text):
        raw = raw.strip().strip("`").strip()
        values = _json_values(raw)
        args = values[0][1] if values and isinstance(values[0][1], dict) else _arguments(raw)
        calls.append(ToolCall(tool_name=name.strip().strip("`'\""), arguments=args))
    return Parsed(calls, "react", no_call=not calls and bool(_FINAL.search(text)))


def _from_python(text: str, known: set[str] | None, positional: dict[str, list[str]]) -> Parsed:
    calls = []
    for match in _PY_CALL.finditer(text):
        name = match.group(1)
        if known is not None and name not in known:
            continue
        depth, end = 0, None
        for i in range(match.end() - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                end = i + 1
                break
        if end is None:
            continue
        try:
            node = ast.parse(text[match.start() : end].replace(name, "f", 1), mode="eval").body
            assert isinstance(node, ast.Call)
            args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
            names = positional.get(name, [])
            for index, arg in enumerate(node.args):
                args[names[index] if index < len(names) else f"arg{index}"] = ast.literal_eval(arg)
        except (SyntaxError, ValueError, AssertionError, TypeError):
            continue
        calls.append(ToolCall(tool_name=name, arguments=args))
    return Parsed(calls, "python")


def parse_calls(
    text: str | None,
    tool_calls: list[dict[str, Any]] | None = None,
    known_tools: set[str] | None = None,
    positional: dict[str, list[str]] | None = None,
) -> Parsed:
    """Extract the tool calls of one model output (text and/or structured ``tool_calls``).

    ``known_tools`` restricts only the loosest format (``name(…)``), where prose could look like
    a call; ``positional`` maps a tool to its parameter names for positional arguments.
    """
    if tool_calls:
        calls: list[ToolCall] = []
        _walk(tool_calls, calls)
        if calls:
            return Parsed(calls, "tool_calls")
    text = text or ""
    if "<tool_call>" in text:
        parsed = _from_hermes(text)
        if parsed.calls:
            return parsed
    body = "\n".join(_FENCE.findall(text)) if "```" in text else text
    for candidate in dict.fromkeys([body, text]):
        parsed = _from_json_text(candidate)
        if parsed.ok:
            return parsed
    closed = close_truncated(body)
    if closed is not None:  # an answer cut off by the token budget (e.g. inside a long argument)
        parsed = _from_json_text(closed)
        # Only calls whose tool name was written whole: a name cut off is no call.
        calls = [c for c in parsed.calls if f'"{c.tool_name}"' in body]
        if calls:
            return Parsed(calls, "json_truncated")
    parsed = _from_react(text)
    if parsed.ok:
        return parsed
    parsed = _from_python(body, known_tools, positional or {})
    if parsed.calls:
        return parsed
    return Parsed([], "none", no_call=bool(_FINAL.search(text)))
