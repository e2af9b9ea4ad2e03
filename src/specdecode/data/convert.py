"""Trace records → chat records (plain, native or steps form), through the shared prompt builder."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from specdecode.prompts import (
    Form,
    PromptOptions,
    call_text,
    native_messages,
    next_call_messages,
    trace_messages,
    trace_text,
)
from specdecode.records import ChatRecord, TraceRecord
from specdecode.registry import Registry


def step_id(record_id: str, step: int) -> str:
    """Id of the ``steps``-form example that predicts call ``step`` of a trace."""
    return f"{record_id}#step{step}"


def convert_record(
    record: TraceRecord, form: Form, registry: Registry, options: PromptOptions = PromptOptions()
) -> Iterator[ChatRecord]:
    """Chat examples for one trace: one for ``plain``/``native``, one per step for ``steps``."""
    tools = registry.subset(record.tools)
    meta = {"level": record.level, "source_id": record.id}
    if form == "plain":
        messages = [
            *trace_messages(record.question, tools, options),
            {"role": "assistant", "content": trace_text(record)},
        ]
        yield ChatRecord(id=record.id, messages=messages, **meta)
    elif form == "native":
        final = {"role": "assistant", "content": record.final_answer or ""}
        messages = native_messages(record, options)
        if final["content"] and record.trace[-1].action.tool_name != "final_answer":
            messages.append(final)
        yield ChatRecord(id=record.id, messages=messages, tools=[t.json_schema() for t in tools], **meta)
    elif form == "steps":
        for k, step in enumerate(record.trace):
            prompt = next_call_messages(record.question, tools, record.trace[:k], options)
            yield ChatRecord(
                id=step_id(record.id, k),
                messages=[*prompt, {"role": "assistant", "content": call_text(step.action)}],
                step=k,
                n_steps=len(record.trace),
                **meta,
            )
    else:
        raise ValueError(f"unknown form {form!r}: choose plain, native or steps")


def convert(
    records: Sequence[TraceRecord], form: Form, registry: Registry, options: PromptOptions = PromptOptions()
) -> list[ChatRecord]:
    """Convert every record; output order follows input order."""
    return [chat for record in records for chat in convert_record(record, form, registry, options)]
