"""``specdecode traces import`` / ``export``: an agent's own logs as traces, and back.

Input: JSONL, one conversation per line, OpenAI chat-completions style::

    {"id": "optional", "level": 1,
     "tools": [{"type": "function", "function": {"name", "description", "parameters"}}],
     "messages": [{"role": "user", "content": "question", "timestamp": "2025-01-01T10:00:00Z"},
                  {"role": "assistant", "content": "thought", "tool_calls": [
                      {"id": "c1", "type": "function",
                       "function": {"name": "search", "arguments": "{\\"query\\": \\"x\\"}"}}],
                   "timestamp": 1735725603.5},
                  {"role": "tool", "tool_call_id": "c1", "content": "result", "duration_s": 0.8},
                  {"role": "assistant", "content": "the final answer"}]}

Mapping: the first user message is the question; each assistant ``tool_calls`` entry is a
step (the message's text is the first step's thought); the ``tool`` message answering it
(by ``tool_call_id``, else in order) is the step's ``observation``; the last assistant text
after the calls is the ``final_answer``. ``arguments`` may be a JSON string or an object;
``content`` may be a string or a list of ``{"type": "text", "text"}`` parts. A line without
``id`` gets ``<file stem>-<line>``.

Timing — per-step fields that speculation reads (seconds, floats):

* ``actor_seconds`` — the actor's think time before the call: the assistant message's own
  ``duration_s`` (or ``duration_ms``), else its timestamp minus the previous message's.
  Further calls of the same assistant message get 0.
* ``tool_seconds`` — the tool's latency: the tool message's ``duration_s`` (or
  ``duration_ms``), else its timestamp minus the calling assistant message's.

A timestamp is ``timestamp`` (ISO 8601, or Unix seconds) or ``created`` (Unix seconds) and
marks when the message was complete. Fields absent from the log are absent from the step.

``tools`` schemas from all lines become a registry (``read_only: false`` unless the user's
``--read-only`` overlay or ``--read-only-tool`` says so); tools called but never declared
are added with an open schema. Malformed lines stop the import with ``path:line: field:
problem`` (exit 2).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from rich.console import Console

from specdecode.errors import InputError
from specdecode.jsonl import describe_validation_error, iter_json_lines
from specdecode.outputs import write_text
from specdecode.records import ChatRecord, ToolSpec, TraceRecord, TraceStep
from specdecode.registry import Registry

console = Console(stderr=True)
UNDECLARED = "(called in the logs; no schema was logged)"
_EMPTY = "\x00empty tool result\x00"


@dataclass
class ImportResult:
    traces: list[TraceRecord]
    tools: list[ToolSpec]
    steps: int = 0
    timed_steps: int = 0
    conflicts: list[str] = field(default_factory=list)


def _text(content: Any) -> Any:
    """OpenAI content parts → one string; other values unchanged (validated later)."""
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return content


def _time(message: dict[str, Any], where: str, path: Path, line: int) -> float | None:
    for key in ("timestamp", "created"):
        value = message.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if isinstance(value, str) and key == "timestamp":
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                pass
        raise InputError(f"{where}.{key}: not an ISO 8601 time or Unix seconds: {value!r}", path, line)
    return None


def _duration(message: dict[str, Any], where: str, path: Path, line: int) -> float | None:
    for key, scale in (("duration_s", 1.0), ("duration_ms", 0.001)):
        value = message.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value) * scale
        raise InputError(f"{where}.{key}: must be a number >= 0, got {value!r}", path, line)
    return None


def _tool_spec(entry: Any, where: str, path: Path, line: int) -> ToolSpec:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: a tool schema must be an object", path, line)
    fn = entry.get("function", entry) if entry.get("type", "function") == "function" else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"].strip():
        raise InputError(f"{where}.function.name: missing or not a string", path, line)
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(params, dict):
        raise InputError(f"{where}.function.parameters: must be a JSON Schema object", path, line)
    return ToolSpec(
        name=fn["name"].strip(),
        description=(fn.get("description") or "").strip() or "(no description in the logs)",
        parameters=params,
    )


def conversation_to_trace(
    raw: dict[str, Any], path: Path, line: int
) -> tuple[TraceRecord, list[ToolSpec], int]:
    """One log line → (trace, its declared tools, steps with timing)."""
    raw = dict(raw)
    raw.setdefault("id", f"{path.stem}-{line}")
    if not isinstance(raw.get("messages"), list):
        raise InputError("messages: missing or not a list", path, line)
    messages = [
        dict(m, content=_text(m.get("content"))) if isinstance(m, dict) else m for m in raw["messages"]
    ]
    # A tool may return nothing; the chat model insists on content, so mark it and map it back.
    checked = [
        dict(m, content=_EMPTY)
        if isinstance(m, dict) and m.get("role") == "tool" and m["content"] == ""
        else m
        for m in messages
    ]
    try:
        chat = ChatRecord.model_validate({"id": raw["id"], "messages": checked, "tools": None})
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc), path, line) from None
    tools_raw = raw.get("tools")
    if tools_raw is not None and not isinstance(tools_raw, list):
        raise InputError("tools: must be a list of tool schemas", path, line)
    tools = [_tool_spec(t, f"tools[{i}]", path, line) for i, t in enumerate(tools_raw or [])]

    question = next((m.content for m in chat.messages if m.role == "user"), None)
    if not question:
        raise InputError("messages: no user message (the question)", path, line)
    steps: list[dict[str, Any]] = []
    by_call_id: dict[str, int] = {}
    pending_thought: list[str] = []
    final_answer: str | None = None
    timed = 0
    previous_time: float | None = None
    for index, (message, original) in enumerate(zip(chat.messages, messages)):
        where = f"messages[{index}]"
        stamp = _time(original, where, path, line)
        duration = _duration(original, where, path, line)
        if stamp is not None and previous_time is not None and stamp < previous_time:
            raise InputError(f"{where}.timestamp: earlier than the message before it", path, line)
        if message.role == "assistant" and message.tool_calls:
            thought = "\n".join([*pending_thought, message.content or ""]).strip()
            pending_thought = []
            actor = duration
            if actor is None and stamp is not None and previous_time is not None:
                actor = stamp - previous_time
            for n, call in enumerate(message.tool_calls):
                step: dict[str, Any] = {
                    "thought": thought if n == 0 else "",
                    "action": {"tool_name": call.function.name, "arguments": call.function.arguments},
                    "_time": stamp,
                }
                if actor is not None:
                    step["actor_seconds"] = round(actor if n == 0 else 0.0, 6)
                if call.id:
                    if call.id in by_call_id:
                        raise InputError(f"{where}.tool_calls[{n}].id: duplicate id {call.id!r}", path, line)
                    by_call_id[call.id] = len(steps)
                steps.append(step)
            final_answer = None
        elif message.role == "tool":
            if message.tool_call_id is not None:
                if message.tool_call_id not in by_call_id:
                    raise InputError(
                        f"{where}.tool_call_id: no earlier tool call with id {message.tool_call_id!r}",
                        path,
                        line,
                    )
                target = by_call_id[message.tool_call_id]
            else:
                target = next((i for i, s in enumerate(steps) if "observation" not in s), None)
                if target is None:
                    raise InputError(f"{where}: tool result without a tool call before it", path, line)
            step = steps[target]
            if "observation" in step:
                raise InputError(f"{where}: a second result for the same tool call", path, line)
            step["observation"] = "" if message.content == _EMPTY else message.content
            tool_time = duration
            if tool_time is None and stamp is not None and step["_time"] is not None:
                tool_time = stamp - step["_time"]
            if tool_time is not None:
                step["tool_seconds"] = round(tool_time, 6)
        elif message.role == "assistant":
            final_answer = message.content
            pending_thought.append(message.content or "")
        if stamp is not None:
            previous_time = stamp
    for step in steps:
        step.pop("_time")
        timed += "actor_seconds" in step or "tool_seconds" in step
    record: dict[str, Any] = {
        "id": chat.id,
        "question": question,
        "trace": steps,
        "final_answer": final_answer.strip() if final_answer else None,
        "tools": [t.name for t in tools] or None,
    }
    if raw.get("level") is not None:
        record["level"] = raw["level"]
    try:
        trace = TraceRecord.model_validate(record)
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc), path, line) from None
    return trace, tools, timed


def read_only_names(overlay: str | Path | None, flags: Sequence[str] = ()) -> set[str]:
    """Tool names marked read-only by a YAML/JSON overlay and by ``--read-only-tool`` flags.

    The overlay is a list of names, a ``{name: true|false}`` mapping, ``{read_only: [names]}``,
    or a registry (a list of tools, those with ``read_only: true`` count).
    """
    names = {n.strip() for n in flags if n.strip()}
    if overlay is None:
        return names
    from specdecode.inputs import load_yaml

    path = Path(overlay)
    if not path.exists() and not path.is_symlink():
        raise InputError("no such read-only overlay file", path)
    try:
        data = load_yaml(path, "read-only overlay file")
    except InputError as exc:
        if not exc.detail.startswith("invalid YAML"):
            raise
        raise InputError(
            f"cannot parse: {exc.detail.removeprefix('invalid YAML: ')}", path, exc.line
        ) from None
    if isinstance(data, dict) and isinstance(data.get("read_only"), list):
        data = data["read_only"]
    elif isinstance(data, dict) and isinstance(data.get("tools"), list):
        data = data["tools"]
    if isinstance(data, dict):
        for name, flag in data.items():
            if not isinstance(flag, bool):
                raise InputError(f"{name}: expected true or false, got {flag!r}", path)
            if flag:
                names.add(str(name))
        return names
    if not isinstance(data, list):
        raise InputError("expected a list of tool names or a {name: true|false} mapping", path)
    for index, item in enumerate(data):
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            if item.get("read_only") is True:
                names.add(item["name"])
        else:
            raise InputError(f"entry {index}: expected a tool name or a tool with a name", path)
    return names


def import_logs(path: str | Path, read_only: Iterable[str] = ()) -> ImportResult:
    """Every conversation of a log file as a trace, and the union of their tool schemas."""
    path = Path(path)
    traces: list[TraceRecord] = []
    specs: dict[str, ToolSpec] = {}
    conflicts: list[str] = []
    seen_ids: dict[str, int] = {}
    steps = timed = 0
    for line, raw in iter_json_lines(path):
        trace, tools, n_timed = conversation_to_trace(raw, path, line)
        if trace.id in seen_ids:
            raise InputError(
                f"id: duplicate id {trace.id!r} (first on line {seen_ids[trace.id]})", path, line
            )
        seen_ids[trace.id] = line
        for spec in tools:
            known = specs.get(spec.name)
            if known is None:
                specs[spec.name] = spec
            elif known.parameters != spec.parameters and spec.name not in conflicts:
                conflicts.append(spec.name)
        traces.append(trace)
        steps += len(trace.trace)
        timed += n_timed
    if not traces:
        raise InputError("file has no conversations", path)
    for trace in traces:
        for step in trace.trace:
            name = step.action.tool_name
            if name not in specs:
                specs[name] = ToolSpec(name=name, description=UNDECLARED, parameters={"type": "object"})
    marked = set(read_only)
    unknown = sorted(marked - set(specs))
    if unknown:
        console.print(
            f"[yellow]warning:[/] read-only tools not in the logs: {', '.join(unknown)}", highlight=False
        )
    tools = [spec.model_copy(update={"read_only": spec.name in marked}) for spec in specs.values()]
    return ImportResult(traces, tools, steps, timed, conflicts)


def write_registry(path: str | Path, tools: Sequence[ToolSpec]) -> None:
    """A registry YAML (name, description, family, read_only, parameters), written atomically."""
    entries = [
        {
            "name": t.name,
            "description": t.description,
            "family": t.family,
            "read_only": t.read_only,
            "parameters": t.parameters,
        }
        for t in tools
    ]
    write_text(
        path,
        "# Tools from agent logs. read_only: true marks tools safe to run speculatively.\n"
        + yaml.safe_dump(entries, sort_keys=False, allow_unicode=True),
    )


def trace_to_conversation(record: TraceRecord, registry: Registry | None = None) -> dict[str, Any]:
    """A trace as one OpenAI chat-completions style log line (the inverse of the import)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": record.question}]
    for number, step in enumerate(record.trace):
        call_id = f"call_{number}"
        extra = step.model_extra or {}
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": step.thought or None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": step.action.tool_name,
                        "arguments": json.dumps(step.action.arguments, ensure_ascii=False),
                    },
                }
            ],
        }
        if extra.get("actor_seconds") is not None:
            assistant["duration_s"] = extra["actor_seconds"]
        messages.append(assistant)
        if step.observation:
            tool: dict[str, Any] = {"role": "tool", "tool_call_id": call_id, "content": step.observation}
            if extra.get("tool_seconds") is not None:
                tool["duration_s"] = extra["tool_seconds"]
            messages.append(tool)
    if record.final_answer:
        messages.append({"role": "assistant", "content": record.final_answer})
    line: dict[str, Any] = {"id": record.id, "messages": messages}
    if record.level is not None:
        line["level"] = record.level
    if registry is not None:
        line["tools"] = [t.json_schema() for t in registry.subset(record.tools)]
    return line


def step_timing(step: TraceStep) -> tuple[float | None, float | None]:
    """``(actor_seconds, tool_seconds)`` of a step, when it has them."""
    extra = step.model_extra or {}
    return extra.get("actor_seconds"), extra.get("tool_seconds")
