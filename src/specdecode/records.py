"""The stable record formats of DESIGN.md as pydantic models.

Every model keeps unknown fields (``extra="allow"``): extra fields are never a reason
to reject a file.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NonEmpty = Field(min_length=1)
TIMING_FIELDS = ("actor_seconds", "tool_seconds")  # measured per-step seconds (trace extra fields)
MAX_STEP_SECONDS = 1e6


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


def _object_arguments(value: Any) -> dict[str, Any]:
    """Arguments must be a JSON object; a JSON string holding an object is accepted."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"arguments string is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ValueError(f"arguments must be a JSON object, got {type(value).__name__}")
    return value


class ToolCall(_Record):
    """One action of a trace: ``{"tool_name": ..., "arguments": {...}}``."""

    tool_name: str = NonEmpty
    arguments: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tool_name", mode="before")
    @classmethod
    def _strip_name(cls, v: Any) -> Any:
        return v.strip() if isinstance(v, str) else v

    @field_validator("arguments", mode="before")
    @classmethod
    def _args(cls, v: Any) -> dict[str, Any]:
        return _object_arguments(v)


class TraceStep(_Record):
    """thought → action → optional observation."""

    thought: str = ""
    action: ToolCall
    observation: str | None = None

    @field_validator("observation", mode="before")
    @classmethod
    def _obs_to_text(cls, v: Any) -> Any:
        if v is None or isinstance(v, str):
            return v
        return json.dumps(v, ensure_ascii=False)

    @model_validator(mode="after")
    def _timings(self) -> TraceStep:
        """Measured ``actor_seconds`` / ``tool_seconds`` (extra fields) are seconds: finite, >= 0."""
        extra = self.__pydantic_extra__
        if not extra:
            return self
        for name in TIMING_FIELDS:
            value = extra.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number of seconds, got {type(value).__name__}")
            if not math.isfinite(value) or not 0 <= value <= MAX_STEP_SECONDS:
                raise ValueError(f"{name} must be between 0 and {MAX_STEP_SECONDS:g} seconds, got {value!r}")
        return self


class TraceRecord(_Record):
    """One question with the actor's trace (the teacher's output)."""

    id: str = NonEmpty
    question: str = NonEmpty
    level: int | None = Field(default=None, ge=1, le=3)
    trace: list[TraceStep]
    final_answer: str | None = None
    tools: list[str] | None = None

    @field_validator("id", "final_answer", mode="before")
    @classmethod
    def _scalar_to_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


class QuestionRecord(_Record):
    """A GAIA(-format) question without a trace."""

    id: str = NonEmpty
    question: str = NonEmpty
    level: int | None = Field(default=None, ge=1, le=3)
    final_answer: str | None = None
    file_name: str | None = None
    annotator_metadata: dict[str, Any] | None = None


class FunctionCall(_Record):
    name: str = NonEmpty
    arguments: dict[str, Any] = Field(default_factory=dict)

    @field_validator("arguments", mode="before")
    @classmethod
    def _args(cls, v: Any) -> dict[str, Any]:
        return _object_arguments(v)


class ChatToolCall(_Record):
    """OpenAI / Hugging Face tool call: ``{"type": "function", "function": {...}}``."""

    type: Literal["function"] = "function"
    id: str | None = None
    function: FunctionCall


class ChatMessage(_Record):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ChatToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _has_content(self) -> ChatMessage:
        has_text = bool(self.content and self.content.strip())
        if not has_text and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"{self.role} message has empty content")
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"only assistant messages may carry tool_calls, not {self.role}")
        return self


class ChatRecord(_Record):
    """Training / evaluation example: plain or native tool-call form."""

    id: str = NonEmpty
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    # What conversion adds: the GAIA level, the trace it came from and, for one-call examples,
    # the index of the call to predict (and the trace's number of calls).
    level: int | None = Field(default=None, ge=1, le=3)
    source_id: str | None = None
    step: int | None = Field(default=None, ge=0)
    n_steps: int | None = Field(default=None, ge=0)

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class ToolSpec(_Record):
    """One entry of a tool registry."""

    name: str = NonEmpty
    description: str = NonEmpty
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}, "required": []}
    )
    read_only: bool = False
    family: str = "other"

    def json_schema(self) -> dict[str, Any]:
        """The OpenAI / Hugging Face ``tools`` entry for this tool."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }
