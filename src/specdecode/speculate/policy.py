"""When to launch a speculative call: the one launch policy that replay's simulator, the
``SpeculativeExecutor``, the framework adapters and the live check all use.

A candidate ``c`` (a read-only call, valid for its tool's schema) is launched when

    P(c) × expected hidden seconds(c)  ≥  λ × cost of a wasted call(c)

at most ``max_launches`` per step, in the predictor's order. ``P(c)`` is the predictor's
probability that ``c`` is the actor's next call (tables: held-out frequencies; ``verify``:
calibrated on validation steps; generating predictors: the model's own probability of the call).
The hidden seconds are what a hit can hide: the tool's expected latency, at most the actor's
expected think time left after the speculator's own latency. The cost of a wasted call is per
tool (``cost`` in the registry, else 1). λ = 0 launches every read-only candidate; a huge λ none;
between them, replay sweeps λ and reports time saved against wasted calls per step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from specdecode.records import ToolCall

LAMBDAS = (0.0, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 1e9)


@dataclass(frozen=True)
class LaunchPolicy:
    """Launch ``c`` when ``P(c) × hidden(c) ≥ λ × cost(c)`` (see the module docstring)."""

    lam: float = 0.0
    max_launches: int = 1
    costs: Mapping[str, float] = field(default_factory=dict)  # tool → cost of a wasted call
    default_cost: float = 1.0

    def cost(self, tool: str) -> float:
        return float(self.costs.get(tool, self.default_cost))

    def worth(self, prob: float | None, hidden: float, tool: str) -> bool:
        """Whether one candidate pays for its risk. A candidate without a probability is launched
        only when λ is 0 (nothing says how likely it is)."""
        if self.lam <= 0:
            return True
        if prob is None:
            return False
        return prob * hidden >= self.lam * self.cost(tool)

    def choose(
        self,
        candidates: Sequence[tuple[ToolCall, float | None]],
        hidden: Callable[[str], float],
        read_only: Callable[[str], bool],
    ) -> list[ToolCall]:
        """The calls to launch, in order: read-only, worth their cost, at most ``max_launches``."""
        out: list[ToolCall] = []
        for call, prob in candidates:
            if len(out) >= self.max_launches:
                break
            if read_only(call.tool_name) and self.worth(prob, hidden(call.tool_name), call.tool_name):
                out.append(call)
        return out

    def describe(self) -> dict[str, Any]:
        return {"lambda": self.lam, "max_launches": self.max_launches, "costs": dict(self.costs)}


def registry_costs(registry: Any) -> dict[str, float]:
    """Per-tool wasted-call costs from a registry's optional ``cost`` fields."""
    out = {}
    for tool in getattr(registry, "tools", ()):
        extra = getattr(tool, "model_extra", None) or {}
        value = extra.get("cost")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            out[tool.name] = float(value)
    return out


def with_probs(
    calls: Sequence[ToolCall], probs: Sequence[float] | None
) -> list[tuple[ToolCall, float | None]]:
    """Candidates paired with their probabilities (None where the predictor gave none)."""
    probs = list(probs or [])
    return [(call, probs[i] if i < len(probs) else None) for i, call in enumerate(calls)]
