"""The one prompt builder: conversion, training, evaluation and speculation all call it,
so a model is asked at run time exactly what it was trained on.

Three forms (see DESIGN.md):

* ``plain``  — system (instructions + tools) → user question → assistant: the whole trace
  as JSON text (the prototype's form, with the tools it lacked).
* ``native`` — the OpenAI / Hugging Face form: assistant ``tool_calls``, ``tool`` results,
  and JSON-schema ``tools`` for the model's chat template to render.
* ``steps``  — one example per step: the question and the gold prefix (with observations)
  as context, the next call as the target. What a speculator is asked at run time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from specdecode.records import ToolCall, ToolSpec, TraceRecord, TraceStep

Form = Literal["plain", "native", "steps"]
ToolStyle = Literal["compact", "json"]

NEXT_CALL_INSTRUCTIONS = (
    "You predict the next tool call of an agent that is answering a question. "
    'Reply with one JSON object {"tool_name": ..., "arguments": {...}} and nothing else.'
)
TRACE_INSTRUCTIONS = (
    "Answer the question by calling tools step by step. Reply with one JSON object "
    '{"trace": [{"thought": ..., "action": {"tool_name": ..., "arguments": {...}}}, ...], '
    '"final_answer": ...}.'
)
NATIVE_INSTRUCTIONS = "Answer the question by calling the available tools, one call at a time."


@dataclass(frozen=True)
class PromptOptions:
    """How prompts render. Short prompts are fast prompts: compact is the default."""

    tool_style: ToolStyle = "compact"
    max_observation_chars: int = 300


def _arg_signature(spec: ToolSpec) -> str:
    props: dict[str, Any] = spec.parameters.get("properties", {}) or {}
    required = set(spec.parameters.get("required", []) or [])
    parts = []
    for name, schema in props.items():
        kind = schema.get("type", "any") if isinstance(schema, dict) else "any"
        parts.append(f"{name}{'' if name in required else '?'}: {kind}")
    return ", ".join(parts)


def render_tools(tools: Sequence[ToolSpec], style: ToolStyle = "compact") -> str:
    """Tools as prompt text: ``name(arg: type, opt?: type) — description`` or JSON schemas."""
    if style == "json":
        return json.dumps([t.json_schema() for t in tools], ensure_ascii=False)
    return "\n".join(f"- {t.name}({_arg_signature(t)}) — {t.description.splitlines()[0]}" for t in tools)


def call_text(call: ToolCall) -> str:
    """The target text of one call, as the trace format writes it."""
    return json.dumps({"tool_name": call.tool_name, "arguments": call.arguments}, ensure_ascii=False)


def trace_text(record: TraceRecord) -> str:
    """The target text of a whole trace (plain form); observations are not the model's to write."""
    steps = [{"thought": s.thought, "action": json.loads(call_text(s.action))} for s in record.trace]
    return json.dumps({"trace": steps, "final_answer": record.final_answer}, ensure_ascii=False)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _history_text(history: Sequence[TraceStep], options: PromptOptions) -> str:
    if not history:
        return "No tool has been called yet."
    lines = ["Calls so far:"]
    for number, step in enumerate(history, start=1):
        lines.append(f"{number}. {call_text(step.action)}")
        if step.observation:
            lines.append(f"   Observation: {_clip(step.observation, options.max_observation_chars)}")
    return "\n".join(lines)


def _system(instructions: str, tools: Sequence[ToolSpec], options: PromptOptions) -> dict[str, str]:
    listing = render_tools(tools, options.tool_style)
    return {"role": "system", "content": f"{instructions}\n\nAvailable tools:\n{listing}"}


def next_call_messages(
    question: str,
    tools: Sequence[ToolSpec],
    history: Sequence[TraceStep] = (),
    options: PromptOptions = PromptOptions(),
) -> list[dict[str, str]]:
    """Prompt for the speculator's job: given the question and the calls so far, the next call."""
    user = f"Question: {question}\n\n{_history_text(history, options)}\n\nNext tool call?"
    return [_system(NEXT_CALL_INSTRUCTIONS, tools, options), {"role": "user", "content": user}]


def trace_messages(
    question: str, tools: Sequence[ToolSpec], options: PromptOptions = PromptOptions()
) -> list[dict[str, str]]:
    """Prompt for a whole trace from the question (the prototype's task)."""
    return [_system(TRACE_INSTRUCTIONS, tools, options), {"role": "user", "content": question}]


def native_messages(record: TraceRecord, options: PromptOptions = PromptOptions()) -> list[dict[str, Any]]:
    """The trace as OpenAI-style messages: assistant ``tool_calls`` and ``tool`` results."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": NATIVE_INSTRUCTIONS},
        {"role": "user", "content": record.question},
    ]
    for number, step in enumerate(record.trace):
        call_id = f"call_{number}"
        messages.append(
            {
                "role": "assistant",
                "content": step.thought or None,
                "tool_calls": [
                    {
                        "type": "function",
                        "id": call_id,
                        "function": {"name": step.action.tool_name, "arguments": step.action.arguments},
                    }
                ],
            }
        )
        if step.observation:
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call_id,
                    "name": step.action.tool_name,
                    "content": _clip(step.observation, options.max_observation_chars),
                }
            )
    return messages


def supports_tools(tokenizer: Any) -> bool:
    """Whether the chat template renders ``tools`` and ``tool_calls`` itself (Qwen3 does)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    return "tool_calls" in template and "tools" in template


def _textualise(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None) -> list[dict]:
    """For templates without tool support: tool calls as JSON text, tools in the system message."""
    out: list[dict[str, Any]] = []
    for message in messages:
        message = dict(message)
        calls = message.pop("tool_calls", None) or []
        if calls:
            texts = [
                json.dumps(
                    {"tool_name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                    ensure_ascii=False,
                )
                for c in calls
            ]
            message["content"] = "\n".join([message.get("content") or "", *texts]).strip()
        out.append({k: v for k, v in message.items() if k in ("role", "content")})
    if tools:
        listing = "\n".join(
            f"- {t['function']['name']}: {t['function'].get('description', '')}" for t in tools
        )
        if out and out[0]["role"] == "system":
            out[0]["content"] += f"\n\nAvailable tools:\n{listing}"
        else:
            out.insert(0, {"role": "system", "content": f"Available tools:\n{listing}"})
    return out


def render_prompt(
    tokenizer: Any,
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """Render messages through the model's own chat template (Qwen3: thinking disabled).

    ``tools`` are JSON schemas; a template that cannot render tools or tool calls gets them
    as text, so every model sees the same information.
    """
    kwargs: dict[str, Any] = {
        "tokenize": False,
        "add_generation_prompt": add_generation_prompt,
        "enable_thinking": False,
    }
    messages = list(messages)
    if supports_tools(tokenizer):
        if tools:
            kwargs["tools"] = list(tools)
    elif tools or any(m.get("tool_calls") for m in messages):
        messages = _textualise(messages, tools)
    return tokenizer.apply_chat_template(messages, **kwargs)
