"""Copy rules: spans of the question or observations beside anchors, texts of a known shape,
fields of structured (JSON) observations — each with the candidates that reproduce a value."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from specdecode.speculate.arguments.views import Text, View, key


# --------------------------------------------------------------------------- copy rules (spans)
@dataclass(frozen=True)
class SpanRule:
    """Value = ``pre`` + a span of ``where`` (``question``, the last ``observation``, or an earlier
    one, newest first: ``observations``) after the words ``left`` and before ``right`` + ``post``.
    ``left == ("^",)``: the start of the text; ``()``: none (the span ends before ``right`` and is
    ``length`` tokens long); ``right == ()``: the span is ``length`` tokens long."""

    where: str
    left: tuple[str, ...]
    right: tuple[str, ...]
    pre: str
    post: str
    length: int
    skip: int = 0  # tokens between the left anchor and the span ("you are Yusuf [Rossi]")

    def texts(self, view: View) -> Iterator[Text]:
        if self.where == "question":
            yield view.question
        elif self.where == "observation":
            if view.results:
                yield view.results[-1].text
        else:
            for result in reversed(view.results[:-1]):
                yield result.text

    def apply(self, view: View) -> str | None:
        for text in self.texts(view):
            span = self._span(text)
            if span is not None:
                return self.pre + text.cut(*span) + self.post
        return None

    def _span(self, text: Text) -> tuple[int, int] | None:
        words, n_words = text.words, len(text.words)
        if not words:
            return None
        if not self.left:
            m = len(self.right)
            for q in text.index.get(self.right[0], ()):
                if q >= self.length and tuple(words[q : q + m]) == self.right:
                    return q - self.length, q
            return None
        if self.left == ("^",):
            starts: Iterator[int] | list[int] = [0]
        else:
            n, skip = len(self.left), self.skip
            starts = (
                p + 1 + skip
                for p in text.index.get(self.left[-1], ())
                if p + 1 - n >= 0 and tuple(words[p + 1 - n : p + 1]) == self.left and p + 1 + skip < n_words
            )
        for p in starts:
            end = None
            if not self.right:
                end = p + self.length if p + self.length <= n_words else None
            else:
                m = len(self.right)
                for q in range(p + 1, min(n_words, p + 2 * self.length + 2) + 1):
                    if tuple(words[q : q + m]) == self.right:
                        end = q
                        break
            if end is not None and end > p:
                return p, end
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "left": list(self.left),
            "right": list(self.right),
            "pre": self.pre,
            "post": self.post,
            "length": self.length,
            "skip": self.skip,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SpanRule:
        left, right = tuple(d["left"]), tuple(d["right"])
        return cls(d["where"], left, right, d["pre"], d["post"], int(d["length"]), int(d.get("skip", 0)))

    def __str__(self) -> str:
        left = "start" if self.left == ("^",) else " ".join(self.left) or "-"
        skip = f" +{self.skip}" if self.skip else ""
        return f"span of the {self.where} after [{left}]{skip} before [{' '.join(self.right) or '-'}]"


def shape_of(value: str) -> str | None:
    """A regular expression for values shaped like ``value``: digit runs of the same length,
    letter runs of any length, other characters as they are (``#W2378156`` → ``#[A-Za-z]+\\d{7}``).
    None for values without a digit or a joining character (plain words: any word has that shape)."""
    if not re.search(r"[\d_@#/:]", value) or len(value) < 4 or len(value) > 80:
        return None
    parts = []
    for run in re.finditer(r"\d+|[A-Za-z]+|\s+|.", value):
        text = run.group()
        if text.isdigit():
            parts.append(rf"\d{{{len(text)}}}")
        elif text.isalpha():
            parts.append("[A-Za-z]+")
        elif text.isspace():
            parts.append(r"\s+")
        else:
            parts.append(re.escape(text))
    return r"(?<![\w#])" + "".join(parts) + r"(?![\w])"


@dataclass(frozen=True)
class ShapeRule:
    """Value = the ``index``-th text shaped like the training values (``shape``, a regular
    expression) in ``where`` (the question, the last observation, or an earlier one, newest
    first); ``index`` -1 is the last one."""

    where: str
    shape: str
    index: int

    def apply(self, view: View) -> str | None:
        pattern = _compiled(self.shape)
        for text in SpanRule(self.where, (), (), "", "", 0).texts(view):
            found = pattern.findall(text.text)
            if found and -len(found) <= self.index < len(found):
                return found[self.index]
        return None

    def to_json(self) -> dict[str, Any]:
        return {"where": self.where, "shape": self.shape, "index": self.index}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ShapeRule:
        return cls(d["where"], d["shape"], int(d["index"]))

    def __str__(self) -> str:
        which = "last" if self.index == -1 else f"#{self.index + 1}"
        return f"{which} text shaped {self.shape} in the {self.where}"


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(shape: str) -> re.Pattern[str]:
    if shape not in _PATTERNS:
        _PATTERNS[shape] = re.compile(shape)
    return _PATTERNS[shape]


def shape_candidates(value: str, view: View) -> list[ShapeRule]:
    """Shape rules that reproduce ``value`` (its occurrence among the texts shaped like it)."""
    shape = shape_of(value)
    if shape is None:
        return []
    pattern = _compiled(shape)
    rules = []
    places: list[tuple[str, str]] = [("question", view.question.text)]
    if view.results:
        places.append(("observation", view.results[-1].observation))
        places += [("observations", r.observation) for r in reversed(view.results[:-1])][:3]
    for where, text in places:
        found = pattern.findall(text)
        for index, match in enumerate(found[:4]):
            if match == value:
                rules.append(ShapeRule(where, shape, index))
        if found and found[-1] == value:
            rules.append(ShapeRule(where, shape, -1))
    return rules


def _longest_run(value: Text, text: Text) -> tuple[int, int, int]:
    """(length, start in value, start in text) of the longest run of value's words in text."""
    best = (0, 0, 0)
    vw, tw = value.words, text.words
    for i, word in enumerate(vw):
        if len(vw) - i <= best[0]:
            break
        for j in text.index.get(word, ()):
            n = 1
            while i + n < len(vw) and j + n < len(tw) and vw[i + n] == tw[j + n]:
                n += 1
            if n > best[0]:
                best = (n, i, j)
    return best


def span_candidates(value: str, view: View) -> list[SpanRule]:
    """Every copy rule that reproduces ``value`` at this step (anchors of a few widths)."""
    vt = Text(value)
    if not vt.words:
        return []
    places: list[tuple[str, Text]] = [("question", view.question)]
    if view.results:
        places.append(("observation", view.results[-1].text))
        places += [("observations", r.text) for r in reversed(view.results[:-1])][:3]
    rules: list[SpanRule] = []
    for where, text in places:
        length, i, j = _longest_run(vt, text)
        core = [w for w in vt.words[i : i + length] if re.match(r"\w", w)]
        if not core or (length == 1 and len(core[0]) < 3):
            continue
        pre, post = value[: vt.spans[i][0]], value[vt.spans[i + length - 1][1] :]
        words, end = text.words, j + length
        lefts = [("^",)] if j == 0 else [tuple(words[j - w : j]) for w in (1, 2, 3) if j - w >= 0]
        rights: list[tuple[str, ...]] = [(), ("$",)] if end == len(words) else [(), (words[end],)]
        for left in dict.fromkeys(lefts):
            for right in rights:
                if right == ("$",):
                    continue
                rules.append(SpanRule(where, left, right, pre, post, length))
        for skip in (1, 2):  # an anchor a word or two before: "you are Yusuf [Rossi]"
            for w in (1, 2):
                if j - skip - w >= 0:
                    left = tuple(words[j - skip - w : j - skip])
                    rules.append(SpanRule(where, left, (), pre, post, length, skip))
        for w in (1, 2):
            if end + w <= len(words):
                rules.append(SpanRule(where, (), tuple(words[end : end + w]), pre, post, length))
    return rules


# --------------------------------------------------------------------------- field rules
@dataclass(frozen=True)
class FieldRule:
    """Value = the field at ``path`` of the latest result of ``tool`` (``"*"``: of any tool).
    ``mode``: ``at`` (that exact path), ``first`` (the first match of a path with ``*`` for list
    indices), ``all`` (every match, as a list), ``next`` / ``next-last`` (the first / last match
    that no earlier call used as an argument: an agent walking through a list of orders)."""

    tool: str
    path: tuple[Any, ...]
    mode: str

    def apply(self, view: View) -> Any:
        result = view.latest(self.tool)
        if result is None:
            return None
        fields = result.fields
        if self.mode == "at":
            return fields.get(self.path)
        matches = [v for p, v in fields.items() if _matches(p, self.path)]
        if self.mode in ("next", "next-last"):
            matches = [v for v in matches if key(v) not in view.used]
            if self.mode == "next-last":
                matches.reverse()
        if not matches:
            return None
        return matches if self.mode == "all" else matches[0]

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "path": list(self.path), "mode": self.mode}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FieldRule:
        return cls(d["tool"], tuple(d["path"]), d["mode"])

    def __str__(self) -> str:
        path = ".".join("*" if p == "*" else str(p) for p in self.path) or "$"
        how = {
            "at": "",
            "first": "first ",
            "all": "every ",
            "next": "first unused ",
            "next-last": "last unused ",
        }[self.mode]
        return f"{how}{path} of the latest {self.tool} result"


def _matches(path: tuple, pattern: tuple) -> bool:
    return len(path) == len(pattern) and all(b == "*" or a == b for a, b in zip(path, pattern))


def field_candidates(value: Any, view: View) -> list[FieldRule]:
    """Field rules that reproduce ``value`` from the results at this step (newest result first)."""
    rules: list[FieldRule] = []
    seen: set[str] = set()
    wanted_list = isinstance(value, list) and value and all(not isinstance(v, (dict, list)) for v in value)
    wanted = key(value) if not isinstance(value, (dict, list)) else None
    for result in reversed(view.results[-4:]):
        if result.tool in seen:
            continue  # only the latest result of each tool is read
        seen.add(result.tool)
        fields = result.fields
        if wanted is not None:
            for path, leaf in fields.items():
                if key(leaf) == wanted:
                    general = tuple("*" if isinstance(p, int) else p for p in path)
                    rules.append(FieldRule(result.tool, path, "at"))
                    if general != path:
                        rules.append(FieldRule(result.tool, general, "first"))
                        rules.append(FieldRule(result.tool, general, "next"))
                        rules.append(FieldRule(result.tool, general, "next-last"))
        elif wanted_list:
            targets = {key(v) for v in value}
            patterns: Counter = Counter()
            for path, leaf in fields.items():
                if key(leaf) in targets:
                    patterns[tuple("*" if isinstance(p, int) else p for p in path)] += 1
            for pattern in patterns:
                rules.append(FieldRule(result.tool, pattern, "all"))
                rules.append(FieldRule(result.tool, pattern, "first"))
    return rules
