"""Evaluation examples: one prompt and its gold calls per item, from a trace JSONL (prompts built
here, gold calls taken from the trace as typed ``ToolCall`` objects) or a chat JSONL (used as
is, gold from its assistant turns)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specdecode.data.convert import convert, step_examples
from specdecode.errors import InputError
from specdecode.evaluate.backends import Request
from specdecode.evaluate.parse import parse_calls
from specdecode.jsonl import iter_json_lines, read_records
from specdecode.prompts import PromptOptions, call_text
from specdecode.records import ChatRecord, ToolCall, ToolSpec, TraceRecord
from specdecode.registry import Registry

MODES = ("trace", "next-call")


@dataclass
class Example:
    """One evaluation item: the prompt, the gold calls (typed) and where it comes from."""

    id: str
    request: Request
    gold: list[ToolCall]
    gold_raw: str
    level: int | None
    step: int | None


def _prompt_and_gold(record: ChatRecord) -> tuple[list[dict[str, Any]], list[ToolCall], str]:
    """Prompt messages (before the first assistant turn) and the gold calls of a user's chat record.

    Only for chat files a user brings: traces never go through text (see ``load_examples``).
    Structured ``tool_calls`` are taken as they are; plain assistant text is parsed.
    """
    messages = [m.model_dump(exclude_none=True) for m in record.messages]
    first = next((i for i, m in enumerate(record.messages) if m.role == "assistant"), None)
    if first is None:
        raise InputError(f"example {record.id!r} has no assistant message to score against")
    if record.step is not None and record.messages[-1].role == "assistant":
        first = len(record.messages) - 1  # a one-call example: earlier assistant turns are context
    gold: list[ToolCall] = []
    raw_parts = []
    for message in record.messages[first:]:
        if message.role != "assistant":
            continue
        if message.tool_calls:
            gold += [
                ToolCall(tool_name=c.function.name, arguments=c.function.arguments)
                for c in message.tool_calls
            ]
            raw_parts.append(json.dumps([c.model_dump(exclude_none=True) for c in message.tool_calls]))
        else:
            gold += parse_calls(message.content).calls
            raw_parts.append(message.content or "")
    return messages[:first], gold, "\n".join(raw_parts)


def _offered_tools(chat: ChatRecord, registry: Registry, trace: TraceRecord | None) -> list[ToolSpec]:
    """The tools a prompt offers: the record's own list, else the whole registry."""
    if trace is not None:
        return registry.subset(trace.tools)
    if chat.tools:
        specs = []
        for schema in chat.tools:
            function = schema.get("function", schema)
            specs.append(
                ToolSpec(
                    name=function.get("name", "?"),
                    description=function.get("description") or "-",
                    parameters=function.get("parameters") or {"type": "object", "properties": {}},
                )
            )
        return specs
    return list(registry.tools)


def _trace_chats(
    traces: Sequence[TraceRecord], mode: str, registry: Registry, options: PromptOptions, prompt_form: str
) -> list[ChatRecord]:
    if mode == "trace":
        return convert(traces, "plain", registry, options)
    if prompt_form == "conversation":
        return step_examples(traces, registry, options, prompt_form="conversation")
    return convert(traces, "steps", registry, options)


def load_examples(
    path: str | Path,
    mode: str,
    registry: Registry,
    options: PromptOptions,
    skip_invalid: bool = False,
    *,
    prompt_form: str = "steps",
    constrained: bool = False,
) -> list[Example]:
    """Examples from a trace JSONL (prompts built here, gold calls taken from the trace as typed
    ``ToolCall`` objects) or a chat JSONL (used as is, gold from its assistant turns).

    ``constrained`` attaches the JSON schema of one call among the prompt's offered tools.
    """
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}: choose trace or next-call")
    if constrained and mode != "next-call":
        raise InputError("--constrained applies to --mode next-call (one call per answer)")
    first = next(iter_json_lines(path), None)
    if first is None:
        raise InputError("file has no records", path)
    traces: dict[str, TraceRecord] = {}
    if "trace" in first[1] and "messages" not in first[1]:
        records = read_records(path, TraceRecord, skip_invalid=skip_invalid)
        traces = {t.id: t for t in records}
        chats = _trace_chats(records, mode, registry, options, prompt_form)
    else:
        chats = read_records(path, ChatRecord, skip_invalid=skip_invalid)
    examples = []
    for chat in chats:
        trace = traces.get(chat.source_id or chat.id) if traces else None
        if trace is not None:
            messages = _prompt_part(chat)
            if mode == "next-call":
                gold = [trace.trace[chat.step or 0].action]
            else:
                gold = [s.action for s in trace.trace]
            raw = "\n".join(call_text(c) for c in gold)
        else:
            messages, gold, raw = _prompt_and_gold(chat)
            if mode == "next-call":
                gold = gold[:1]
        schema = None
        if constrained:
            from specdecode.evaluate.constrain import call_schema

            schema = call_schema(_offered_tools(chat, registry, trace))
        request = Request(chat.id, messages, chat.tools, response_schema=schema)
        examples.append(
            Example(id=chat.id, request=request, gold=gold, gold_raw=raw, level=chat.level, step=chat.step)
        )
    return examples


def _prompt_part(chat: ChatRecord) -> list[dict[str, Any]]:
    """The prompt of a converted example: before its one target (a step example ends with the
    target call), or before the first assistant turn (a whole trace)."""
    messages = [m.model_dump(exclude_none=True) for m in chat.messages]
    if chat.step is not None:
        return messages[:-1]
    return messages[: next(i for i, m in enumerate(chat.messages) if m.role == "assistant")]
