"""What OTel spans mean: which are tool or model spans (GenAI semantic conventions,
OpenInference), a tool span's name, arguments and result, a model span's messages, and a
trace's question."""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from typing import Any

from specdecode.integrations.otlp_spans import _Span

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
