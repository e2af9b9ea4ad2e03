"""The one prompt builder: conversion, training, evaluation and speculation all call it,
so a model is asked at run time exactly what it was trained on.

Four forms (see DESIGN.md and docs/training-forms.md):

* ``plain``  — system (instructions + tools) → user question → assistant: the whole trace
  as JSON text (the prototype's form, with the tools it lacked).
* ``native`` — the OpenAI / Hugging Face form: assistant ``tool_calls``, ``tool`` results,
  and JSON-schema ``tools`` for the model's chat template to render.
* ``steps``  — one example per step: the question and the gold prefix (with observations)
  as context, the next call as the target. What a speculator is asked at run time.
* ``conversation`` — one example per trace: system (+ tools), the question, then every call as
  an assistant turn (``tool_calls``, no thought) and every observation as a ``tool`` turn. The
  loss covers every call, so one pass teaches what the steps form teaches in one pass per step.
  The speculator's prompt for call k is this conversation cut before call k
  (``conversation_messages(..., history=trace[:k])``), so the prompt of step k+1 extends the
  prompt of step k and the rendered prompt is a token prefix of the training conversation.

Every other text a model is shown lives here too: the teacher's instructions and reply schema
(``teacher_messages``, ``trace_schema``) and the LLM judges' rubrics (``JUDGE_*_SYSTEM``,
``judge_context``, ``judge_answer``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from specdecode.records import ToolCall, ToolSpec, TraceRecord, TraceStep

Form = Literal["plain", "native", "steps", "conversation"]
PromptForm = Literal["steps", "conversation"]
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
CONVERSATION_INSTRUCTIONS = (
    "You are an agent answering the question by calling the available tools, one call per turn. "
    "Reply with the next tool call only."
)
TEXT_CALL_FORMAT = 'Call a tool by replying with one JSON object {"tool_name": ..., "arguments": {...}}.'


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
        if isinstance(schema, dict) and isinstance(schema.get("enum"), list):
            kind = "|".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
        parts.append(f"{name}{'' if name in required else '?'}: {kind}")
    return ", ".join(parts)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")


def summary_line(description: str) -> str:
    """A tool description's first sentence (of its first line): what the compact style shows.
    Real tools' descriptions run to a paragraph of usage rules; their first sentence says what
    the tool does, and a speculator's prompt length is its latency."""
    first = description.strip().splitlines()[0] if description.strip() else ""
    return _SENTENCE_END.split(first, maxsplit=1)[0]


def render_tools(tools: Sequence[ToolSpec], style: ToolStyle = "compact") -> str:
    """Tools as prompt text: ``name(arg: type, opt?: type) — first sentence`` or JSON schemas."""
    if style == "json":
        return json.dumps([t.json_schema() for t in tools], ensure_ascii=False)
    return "\n".join(f"- {t.name}({_arg_signature(t)}) — {summary_line(t.description)}" for t in tools)


def call_text(call: ToolCall) -> str:
    """The target text of one call, as the trace format writes it."""
    return json.dumps({"tool_name": call.tool_name, "arguments": call.arguments}, ensure_ascii=False)


def trace_text(record: TraceRecord) -> str:
    """The target text of a whole trace (plain form); observations are not the model's to write."""
    steps = [{"thought": s.thought, "action": json.loads(call_text(s.action))} for s in record.trace]
    return json.dumps({"trace": steps, "final_answer": record.final_answer}, ensure_ascii=False)


def _tool_message(step: TraceStep, call_id: str, options: PromptOptions) -> dict[str, Any]:
    """The ``tool`` message carrying a step's observation (clipped), answering ``call_id``."""
    return {
        "role": "tool",
        "tool_call_id": call_id,
        "name": step.action.tool_name,
        "content": _clip(step.observation or "", options.max_observation_chars),
    }


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
            messages.append(_tool_message(step, call_id, options))
    return messages


def _call_message(call: ToolCall, call_id: str) -> dict[str, Any]:
    """One call as an assistant turn with ``tool_calls`` and no text (no thought: a speculator
    guesses the call before the actor's thought exists)."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "type": "function",
                "id": call_id,
                "function": {"name": call.tool_name, "arguments": call.arguments},
            }
        ],
    }


def conversation_messages(
    question: str,
    history: Sequence[TraceStep] = (),
    options: PromptOptions = PromptOptions(),
    target: ToolCall | None = None,
) -> list[dict[str, Any]]:
    """The ``conversation`` form: system, question, then each call of ``history`` as an assistant
    turn followed by its observation as a ``tool`` turn; with ``target``, that call as the last
    assistant turn (no observation after it).

    ``history=trace[:k]`` is the speculator's prompt for call k, and
    ``conversation_messages(q, trace[:-1], target=trace[-1].action)`` the whole training
    conversation: the same function builds both. Tools travel separately as JSON schemas
    (``tool_schemas``) so a template with native tool support renders them itself.
    """
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": CONVERSATION_INSTRUCTIONS},
        {"role": "user", "content": question},
    ]
    for number, step in enumerate(history):
        call_id = f"call_{number}"
        messages.append(_call_message(step.action, call_id))
        if step.observation:
            messages.append(_tool_message(step, call_id, options))
    if target is not None:
        messages.append(_call_message(target, f"call_{len(history)}"))
    return messages


def tool_schemas(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The ``tools`` of a chat record: one OpenAI / Hugging Face JSON schema per tool."""
    return [t.json_schema() for t in tools]


def supports_tools(tokenizer: Any) -> bool:
    """Whether the chat template renders ``tools`` and ``tool_calls`` itself (Qwen3 does)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    return "tool_calls" in template and "tools" in template


def _schema_spec(schema: dict[str, Any]) -> ToolSpec:
    function = schema.get("function", schema)
    return ToolSpec(
        name=function.get("name") or "?",
        description=function.get("description") or "-",
        parameters=function.get("parameters") or {"type": "object", "properties": {}},
    )


def _textualise(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None) -> list[dict]:
    """For templates without tool support: tool calls as JSON text (``call_text``, the steps
    form's target format), tools listed compactly in the system message with the call format."""
    out: list[dict[str, Any]] = []
    for message in messages:
        message = dict(message)
        calls = message.pop("tool_calls", None) or []
        if calls:
            texts = [
                call_text(ToolCall(tool_name=c["function"]["name"], arguments=c["function"]["arguments"]))
                for c in calls
            ]
            message["content"] = "\n".join([message.get("content") or "", *texts]).strip()
        out.append({k: v for k, v in message.items() if k in ("role", "content")})
    if tools:
        listing = render_tools([_schema_spec(t) for t in tools])
        block = f"Available tools:\n{listing}\n\n{TEXT_CALL_FORMAT}"
        if out and out[0]["role"] == "system":
            out[0]["content"] += f"\n\n{block}"
        else:
            out.insert(0, {"role": "system", "content": block})
    return out


def _thinks(tokenizer: Any) -> bool:
    """Whether the template has a thinking switch and keeps per-turn reasoning (Qwen3)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    return "enable_thinking" in template and "reasoning_content" in template


def _no_think_history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assistant turns rendered as the model wrote them with thinking disabled.

    Qwen3's generation prompt with ``enable_thinking=False`` ends with an empty
    ``<think>\\n\\n</think>\\n\\n`` block, but its template drops that block from earlier turns,
    so a prompt would not be a prefix of the conversation that continues it. An empty (one
    newline) ``reasoning_content`` makes every turn render the empty block, as generated.
    """
    out = []
    for message in messages:
        if message.get("role") == "assistant" and "reasoning_content" not in message:
            message = {**message, "reasoning_content": "\n"}
        out.append(message)
    return out


def render_prompt(
    tokenizer: Any,
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """Render messages through the model's own chat template (Qwen3: thinking disabled).

    ``tools`` are JSON schemas; a template that cannot render tools or tool calls gets them
    as text, so every model sees the same information. Earlier assistant turns render as the
    generation prompt does (see ``_no_think_history``), so the prompt for a conversation's
    next turn is always a prefix of that conversation rendered with the turn.
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
        if _thinks(tokenizer):
            messages = _no_think_history(messages)
    elif tools or any(m.get("tool_calls") for m in messages):
        messages = _textualise(messages, tools)
    return tokenizer.apply_chat_template(messages, **kwargs)


# --- The teacher: what the expensive agent is asked (``specdecode traces generate``) ---------
# The tool list uses ``render_tools``, the renderer of the speculator's prompts, so the teacher
# and the speculator see the same tool names.

TEACHER_INSTRUCTIONS = """You are an expert research agent. Solve the user's question by planning \
the tool calls you would make, step by step, using only the tools listed below.

Reply with exactly one JSON object and nothing else:
{"trace": [{"thought": "why this step", "action": {"tool_name": "<a listed tool>", \
"arguments": {...}}}, ...], "final_answer": "the answer"}

Rules:
- Every action names one listed tool and gives arguments that match its parameters.
- Thoughts are short and say what you expect to learn from the call.
- Use as few steps as the question needs; give your best final answer."""


def teacher_messages(
    question: str, tools: Sequence[ToolSpec], style: ToolStyle = "json"
) -> list[dict[str, str]]:
    """System (instructions and tools) and user (the question) messages."""
    listing = render_tools(tools, style)
    return [
        {"role": "system", "content": f"{TEACHER_INSTRUCTIONS}\n\nAvailable tools:\n{listing}"},
        {"role": "user", "content": f"Question: {question}"},
    ]


def trace_schema(tool_names: Sequence[str]) -> dict[str, Any]:
    """JSON Schema of the reply, for providers that enforce a response schema."""
    return {
        "type": "object",
        "properties": {
            "trace": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "thought": {"type": "string"},
                        "action": {
                            "type": "object",
                            "properties": {
                                "tool_name": {"type": "string", "enum": list(tool_names)},
                                "arguments": {"type": "object"},
                            },
                            "required": ["tool_name", "arguments"],
                        },
                    },
                    "required": ["thought", "action"],
                },
            },
            "final_answer": {"type": "string"},
        },
        "required": ["trace", "final_answer"],
    }


# --- LLM judges (``--judge gemini|openai|pairwise-*``) -----------------------------------------

MAX_JUDGE_ANSWER_CHARS = 1500

JUDGE_POINTWISE_SYSTEM = """You grade an AI agent's tool calls against the reference tool calls.
Judge the tool names (arguments matter only to break doubt):
- 1.0: every reference tool is called, by the right name, in the right order;
- 0.5: some tool names are right;
- 0.0: the tool names are wrong, or no tool was called.
Reply with one JSON object: {"score": 1.0 | 0.5 | 0.0, "reason": "one sentence"}."""

JUDGE_PAIRWISE_SYSTEM = """You compare two AI agents' tool calls against the reference tool calls.
Prefer the answer whose tool names match the reference (in order); when the names are equally
good, prefer matching arguments. Say "tie" when neither is better. Ignore the answers' order
and length. Reply with one JSON object: {"winner": "A" | "B" | "tie", "reason": "one sentence"}."""


def judge_answer(pred_raw: str, pred_calls: list[dict[str, Any]]) -> str:
    """One answer as a judge sees it: the raw text (cut at ``MAX_JUDGE_ANSWER_CHARS``) and the
    calls extracted from it."""
    raw = pred_raw
    if len(raw) > MAX_JUDGE_ANSWER_CHARS:
        raw = raw[:MAX_JUDGE_ANSWER_CHARS] + " …(cut)"
    calls = json.dumps(pred_calls, ensure_ascii=False)
    return f"Raw answer:\n{raw or '(empty)'}\nTool calls extracted from it: {calls}"


def judge_context(question: str, gold: list[dict[str, Any]], mode: str) -> str:
    """The task, the question with its context, and the reference calls."""
    task = "the agent's next tool call" if mode == "next-call" else "the agent's whole sequence of tool calls"
    reference = json.dumps(gold, ensure_ascii=False)
    return f"Task: predict {task}.\n\nQuestion and context:\n{question}\n\nReference tool calls: {reference}"
