"""When does a predicted call count as the real one? ``exact``, ``normalised`` (the metric of
DESIGN.md) or ``jaccard`` (token Jaccard of the arguments at or above a threshold)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from specdecode.evaluate.metrics import normalise, same_call
from specdecode.records import ToolCall

MATCHERS = ("exact", "normalised", "jaccard")
_TOKEN = re.compile(r"\w+", re.UNICODE)

Matcher = Callable[[ToolCall, ToolCall], bool]


def _tokens(arguments: dict[str, Any]) -> set[str]:
    text = json.dumps(normalise(arguments), ensure_ascii=False)
    return {t.casefold() for t in _TOKEN.findall(text)}


def jaccard(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Token Jaccard similarity of two argument objects (1.0 when both are empty)."""
    ta, tb = _tokens(a), _tokens(b)
    if not ta and not tb:
        return 1.0
    return len(ta & tb) / len(ta | tb)


def same_name(a: ToolCall, b: ToolCall) -> bool:
    return a.tool_name == b.tool_name


def exact(a: ToolCall, b: ToolCall) -> bool:
    return a.tool_name == b.tool_name and a.arguments == b.arguments


def make_matcher(kind: str = "normalised", threshold: float = 0.8) -> Matcher:
    """The matcher named ``kind``; ``threshold`` only for ``jaccard``."""
    if kind == "exact":
        return exact
    if kind in ("normalised", "normalized"):
        return same_call
    if kind == "jaccard":
        return lambda a, b: a.tool_name == b.tool_name and jaccard(a.arguments, b.arguments) >= threshold
    raise ValueError(f"unknown matcher {kind!r}: choose {', '.join(MATCHERS)}")
