"""Trace records → chat records (plain, native, steps or conversation form), through the shared
prompt builder; ``step_examples`` gives the next-call examples (one per call) of either prompt form."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import get_args

from specdecode.prompts import (
    Form,
    PromptForm,
    PromptOptions,
    call_text,
    conversation_messages,
    native_messages,
    next_call_messages,
    tool_schemas,
    trace_messages,
    trace_text,
)
from specdecode.records import ChatRecord, TraceRecord
from specdecode.registry import Registry


def step_id(record_id: str, step: int) -> str:
    """Id of the next-call example that predicts call ``step`` of a trace (either prompt form)."""
    return f"{record_id}#step{step}"


def convert_record(
    record: TraceRecord, form: Form, registry: Registry, options: PromptOptions = PromptOptions()
) -> Iterator[ChatRecord]:
    """Chat examples for one trace: one for ``plain``/``native``/``conversation``, one per step
    for ``steps``. A ``conversation`` record is marked ``form="conversation"``: training splits
    it into windows when it is too long (``train.data.build_conversation_examples``)."""
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
        # an empty trace (no calls, only a final answer) is valid: the answer is the whole reply
        ends_with_answer = bool(record.trace) and record.trace[-1].action.tool_name == "final_answer"
        if final["content"] and not ends_with_answer:
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
    elif form == "conversation":
        if not record.trace:  # no call to learn: like the steps form, no example
            return
        messages = conversation_messages(
            record.question, record.trace[:-1], options, target=record.trace[-1].action
        )
        yield ChatRecord(
            id=record.id,
            messages=messages,
            tools=tool_schemas(tools),
            n_steps=len(record.trace),
            form="conversation",
            **meta,
        )
    else:
        raise ValueError(f"unknown form {form!r}: choose {', '.join(get_args(Form))}")


def convert(
    records: Sequence[TraceRecord], form: Form, registry: Registry, options: PromptOptions = PromptOptions()
) -> list[ChatRecord]:
    """Convert every record; output order follows input order."""
    return [chat for record in records for chat in convert_record(record, form, registry, options)]


def step_examples(
    records: Sequence[TraceRecord],
    registry: Registry,
    options: PromptOptions = PromptOptions(),
    prompt_form: PromptForm = "steps",
) -> list[ChatRecord]:
    """One next-call example per call of every trace, in the prompt form a speculator was trained on.

    Every example has the same ``id`` (``step_id``), ``step``, ``n_steps``, ``level``,
    ``source_id`` and gold target call whatever the form; the messages end with the target as
    the one assistant turn, and the prompt is everything before it:

    * ``steps`` — exactly the ``steps`` training form (question + "Calls so far" in one user turn);
    * ``conversation`` — the ``conversation`` training form cut before call k (the calls as
      assistant ``tool_calls`` turns, observations as ``tool`` turns, ``tools`` as schemas), so
      the rendered prompt of step k is a token prefix of the rendered training conversation.
      The earlier calls carry ``"weight": 0``, so a step example trains (or, as validation data,
      scores) its target call only.
    """
    if prompt_form == "steps":
        return convert(records, "steps", registry, options)
    if prompt_form != "conversation":
        raise ValueError(f"unknown prompt form {prompt_form!r}: choose {', '.join(get_args(PromptForm))}")
    out = []
    for record in records:
        schemas = tool_schemas(registry.subset(record.tools))
        for k, step in enumerate(record.trace):
            messages = conversation_messages(record.question, record.trace[:k], options, target=step.action)
            for message in messages[:-1]:
                if message["role"] == "assistant":
                    message["weight"] = 0  # earlier calls are context: only the target is trained
            out.append(
                ChatRecord(
                    id=step_id(record.id, k),
                    messages=messages,
                    tools=schemas,
                    step=k,
                    n_steps=len(record.trace),
                    level=record.level,
                    source_id=record.id,
                )
            )
    return out
