"""The one interface every predictor implements."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from specdecode.records import ToolCall, ToolSpec, TraceRecord, TraceStep
from specdecode.registry import Registry


@dataclass(frozen=True)
class StepContext:
    """What a predictor sees before step ``step``: the question, the gold prefix with its
    observations, and the tools offered."""

    question: str
    history: tuple[TraceStep, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    id: str = ""
    step: int = 0
    level: int | None = None

    @property
    def previous_tools(self) -> list[str]:
        return [s.action.tool_name for s in self.history]

    @property
    def tool_names(self) -> list[str]:
        return [t.name for t in self.tools]


def contexts_of(record: TraceRecord, registry: Registry) -> list[StepContext]:
    """One context per step of a gold trace (step k sees steps 0..k-1)."""
    tools = tuple(registry.subset(record.tools))
    return [
        StepContext(
            question=record.question,
            history=tuple(record.trace[:k]),
            tools=tools,
            id=record.id,
            step=k,
            level=record.level,
        )
        for k in range(len(record.trace))
    ]


@dataclass
class Prediction:
    """Up to k candidate calls, best first, the seconds it took to produce them, and each
    candidate's probability of being the actor's next call (when the predictor has one)."""

    calls: list[ToolCall]
    latency: float
    extra: dict[str, Any] = field(default_factory=dict)
    probs: list[float] = field(default_factory=list)


def dedupe(calls: Sequence[ToolCall]) -> list[ToolCall]:
    """Drop candidates equal (after normalisation) to an earlier one."""
    from specdecode.evaluate.metrics import normalise

    seen: set[Any] = set()
    out = []
    for call in calls:
        key = (call.tool_name, normalise(call.arguments))
        if key not in seen:
            seen.add(key)
            out.append(call)
    return out


class Predictor:
    """``predict(context, k)`` → up to ``k`` candidate calls, best first.

    ``predict_many`` answers many contexts at once (model predictors batch them) and reports
    each prediction's latency; the default times ``predict`` one context at a time.
    """

    name: str = "predictor"

    def predict(self, context: StepContext, k: int = 1) -> list[ToolCall]:
        raise NotImplementedError

    def predict_many(self, contexts: Sequence[StepContext], k: int = 1) -> list[Prediction]:
        out = []
        for context in contexts:
            started = time.perf_counter()
            calls = self.predict(context, k)
            out.append(Prediction(calls[:k], time.perf_counter() - started))
        return out

    def describe(self) -> dict[str, Any]:
        """Settings that change predictions (part of replay's fingerprint)."""
        return {"name": self.name}
