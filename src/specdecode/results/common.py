"""Pieces several result files share: a rate with its interval, a paired test, a call."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from specdecode.results.base import Number, ResultModel


class Rate(ResultModel):
    """A mean of binary (or [0, 1]) outcomes with its 95 % bootstrap interval
    (:func:`specdecode.evaluate.metrics.rate`)."""

    mean: Number | None = None
    ci95: list[Number | None] = Field(default_factory=lambda: [None, None])
    n: int | None = None

    @classmethod
    def of(cls, value: Any) -> Rate:
        """A rate from a stored rate or a bare number (older flat fields)."""
        if isinstance(value, Rate):
            return value
        if isinstance(value, dict):
            return cls.model_validate(value)
        return cls(mean=value) if isinstance(value, (int, float)) and not isinstance(value, bool) else cls()

    @property
    def interval(self) -> tuple[float, float] | None:
        """The 95 % interval when both bounds are known."""
        if len(self.ci95) == 2 and None not in self.ci95:
            return float(self.ci95[0]), float(self.ci95[1])  # type: ignore[arg-type]
        return None


Breakdown = dict[str, Rate]  # group (level, tool, step index) → rate


class PairedTest(ResultModel):
    """B against A on the same items: wins (B right, A wrong), ties, losses, exact McNemar p
    (:func:`specdecode.evaluate.metrics.paired`)."""

    wins: int | None = None
    ties: int | None = None
    losses: int | None = None
    mcnemar_p: Number | None = None

    @property
    def counted(self) -> bool:
        return None not in (self.wins, self.ties, self.losses)


class Call(ResultModel):
    """A tool call as results store it."""

    tool_name: str = "?"
    arguments: Any = Field(default_factory=dict)
