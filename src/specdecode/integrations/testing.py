"""Small helpers for testing an adapter without an LLM: a scripted predictor and a registry
built from names. Nothing here imports an agent framework."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from specdecode.records import ToolCall, ToolSpec
from specdecode.registry import Registry
from specdecode.speculate.predictors.base import Predictor, StepContext


class ScriptedPredictor(Predictor):
    """Predicts ``script[len(history)]`` (a call, a list of candidates, or ``None``) after
    ``delay`` seconds; past the script's end it predicts nothing."""

    name = "scripted"

    def __init__(self, script: Sequence[ToolCall | Sequence[ToolCall] | None], delay: float = 0.0):
        self.script = list(script)
        self.delay = delay
        self.contexts: list[StepContext] = []  # every context it was asked about

    def predict(self, context: StepContext, k: int = 1) -> list[ToolCall]:
        self.contexts.append(context)
        if self.delay:
            time.sleep(self.delay)
        step = len(context.history)
        if step >= len(self.script) or self.script[step] is None:
            return []
        entry = self.script[step]
        calls = [entry] if isinstance(entry, ToolCall) else list(entry)  # type: ignore[arg-type]
        return calls[:k]


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(tool_name=name, arguments=arguments)


def registry_of(tools: Mapping[str, bool], name: str = "test-tools") -> Registry:
    """A registry from ``{tool name: read_only}``."""
    return Registry(
        name=name,
        tools=tuple(
            ToolSpec(name=tool, description=f"the {tool} tool", read_only=read_only)
            for tool, read_only in tools.items()
        ),
    )
