"""What the teacher is asked: one JSON object with ``trace`` and ``final_answer``.

The tool list is rendered by :func:`specdecode.prompts.render_tools`, the same renderer the
speculator's prompts use, so the teacher and the speculator see the same tool names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from specdecode.prompts import ToolStyle, render_tools
from specdecode.records import ToolSpec

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
