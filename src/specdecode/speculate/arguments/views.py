"""What argument sources read at one step: the question, earlier results (parsed once), the
previous tool and the values already used."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from specdecode.evaluate.metrics import normalise

START = "<s>"
MAX_LEAVES = 4000  # fields read from one structured observation
_TOK = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def key(value: Any) -> str:
    """Equality of argument values as the hit metric sees it (case and spacing folded)."""
    return json.dumps(normalise(value), ensure_ascii=False)


# --------------------------------------------------------------------------- what sources read
class Text:
    """A text with its casefolded word tokens and an index word → positions."""

    __slots__ = ("index", "spans", "text", "words")

    def __init__(self, text: str):
        self.text = text
        found = [(m.group().casefold(), m.start(), m.end()) for m in _TOK.finditer(text)]
        self.words = [w for w, _, _ in found]
        self.spans = [(a, b) for _, a, b in found]
        self.index: dict[str, list[int]] = defaultdict(list)
        for position, word in enumerate(self.words):
            self.index[word].append(position)

    def cut(self, start: int, end: int) -> str:
        """The original text of tokens ``start..end-1``."""
        return self.text[self.spans[start][0] : self.spans[end - 1][1]]


def _flatten(value: Any, path: tuple = (), out: dict | None = None) -> dict[tuple, Any]:
    out = {} if out is None else out
    if len(out) >= MAX_LEAVES or len(path) > 8:
        return out
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, (*path, str(k)), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(v, (*path, i), out)
    elif value is not None and not isinstance(value, bool):
        out[path] = value
    return out


class Result:
    """One earlier call's observation: its tool, its text, its fields when it is JSON."""

    __slots__ = ("_fields", "_text", "observation", "tool")

    def __init__(self, tool: str, observation: str):
        self.tool, self.observation = tool, observation
        self._text: Text | None = None
        self._fields: dict[tuple, Any] | None = None

    @property
    def text(self) -> Text:
        if self._text is None:
            self._text = Text(self.observation)
        return self._text

    @property
    def fields(self) -> dict[tuple, Any]:
        """Path → scalar value; a result that is not a JSON object or list is one field, ``()``."""
        if self._fields is None:
            stripped = self.observation.strip()
            parsed: Any = None
            if stripped[:1] in "[{":
                try:
                    parsed = json.loads(stripped)
                except (json.JSONDecodeError, RecursionError):
                    parsed = None
            if isinstance(parsed, (dict, list)):
                self._fields = _flatten(parsed)
            else:
                self._fields = {(): stripped} if stripped else {}
        return self._fields


@dataclass
class View:
    """What the argument sources see at one step: the question, earlier results, previous tool,
    and the values earlier calls already used as arguments."""

    question: Text
    results: list[Result]  # oldest first
    prev: str
    used: frozenset[str] = frozenset()  # keys of argument values (and list items) used so far

    def latest(self, tool: str) -> Result | None:
        for result in reversed(self.results):
            if tool in ("*", result.tool):
                return result
        return None


class Views:
    """Builds (and caches) views of a trace's steps: a result is parsed once per trace."""

    def __init__(self) -> None:
        self._questions: dict[str, Text] = {}

    def of(self, question: str, history: Sequence[Any]) -> View:
        text = self._questions.get(question)
        if text is None:
            text = self._questions[question] = Text(question)
        results = [_cached_result(step) for step in history]
        prev = history[-1].action.tool_name if history else START
        used: set[str] = set()
        for step in history:
            for value in step.action.arguments.values():
                used.update(key(v) for v in (value if isinstance(value, list) else [value]))
        return View(text, results, prev, frozenset(used))


_RESULTS: dict[int, tuple[Any, Result]] = {}


def _cached_result(step: Any) -> Result:
    """One Result per trace step object (steps are shared by every later step's history)."""
    hit = _RESULTS.get(id(step))
    if hit is not None and hit[0] is step:
        return hit[1]
    result = Result(step.action.tool_name, step.observation or "")
    if len(_RESULTS) > 50_000:
        _RESULTS.clear()
    _RESULTS[id(step)] = (step, result)
    return result
