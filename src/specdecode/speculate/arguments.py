"""Where a table's predicted arguments come from: small named sources, chosen by cross-validation.

Sources (each fitted on training calls of one tool):

* ``memory``   — the whole argument set most often seen with this tool after this previous tool
  (else overall): right when a tool is called the same way every time;
* ``constant`` — per argument, its most frequent value (after this previous tool, else overall);
* ``span``     — per argument, a copy rule: a span of the question or of an earlier observation
  found beside anchors (the words before and/or after it), with fixed text around it;
* ``field``    — per argument, a field of a structured (JSON) observation: the value at a path
  (``items[*].product_id``) of the latest result of a given tool, every value at that path (for a
  list argument such as ``item_ids``), or a plain-text result as a whole (a user id).

Copied values keep their original text and case. Which source fills an argument is decided per
tool and argument — and per previous tool where there are at least ``MIN_SUPPORT`` training calls
— by k-fold cross-validation on the training traces only: each source is fitted on k - 1 folds and
scored on the held-out fold, sources are ranked by held-out accuracy, and at prediction the best
one that yields a value valid for the argument's schema wins. The per-argument plan and whole-call
memory compete the same way. The fitted plan says which source each argument uses and why
(``describe``), and every candidate carries its held-out probability of being right.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from specdecode.evaluate.metrics import normalise
from specdecode.records import ToolSpec, TraceRecord
from specdecode.speculate.schema import INVALID, cast_value

START = "<s>"
SOURCES = ("memory", "constant", "span", "field")
MIN_SUPPORT = 3  # training calls of a (tool, previous tool) pair before it gets its own plan
SHRINK = 3.0  # pseudo-calls pulling a previous tool's held-out accuracy toward the tool's overall one
PREFERENCE = ("field", "span", "constant")  # ties go to sources that copy (constants memorise)
FOLDS = 5
MAX_RULES = 24  # copy rules / field rules kept per argument
MAX_CANDIDATES = 120  # candidate rules per argument checked against every training call
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


# --------------------------------------------------------------------------- fitted sources
Rule = SpanRule | ShapeRule | FieldRule


@dataclass
class RuleSet:
    """Rules of one kind for one argument, with their training tallies per previous tool."""

    rules: list[tuple[Rule, dict[str, int], dict[str, int]]] = field(
        default_factory=list
    )  # rule, right, wrong

    def ranked(self, prev: str) -> list[Rule]:
        def net(item: tuple[Rule, dict[str, int], dict[str, int]]) -> tuple[int, int]:
            _, right, wrong = item
            return (right.get(prev, 0) - wrong.get(prev, 0), right.get("*", 0) - wrong.get("*", 0))

        out = []
        for item in sorted(self.rules, key=net, reverse=True):
            here, overall = net(item)
            if here < 0 or (here == 0 and overall <= 0):
                continue
            out.append(item[0])
        return out

    def propose(self, view: View, limit: int = 2) -> list[tuple[Any, Rule]]:
        out: list[tuple[Any, Rule]] = []
        seen: set[str] = set()
        for rule in self.ranked(view.prev):
            value = rule.apply(view)
            if value is None:
                continue
            k = key(value)
            if k not in seen:
                seen.add(k)
                out.append((value, rule))
                if len(out) >= limit:
                    break
        return out


@dataclass
class ArgumentSources:
    """Every per-argument source of one (tool, argument), fitted on training calls."""

    constant: dict[str, Counter]  # previous tool or "*" → value key counts
    originals: dict[str, Any]  # value key → the value as first seen (original case)
    span: RuleSet
    field: RuleSet

    def propose(self, source: str, view: View, limit: int = 2) -> list[tuple[Any, str]]:
        """Up to ``limit`` values from ``source`` here, best first, each with how it was found."""
        if source == "constant":
            counts = self.constant.get(view.prev) or self.constant.get("*") or Counter()
            return [
                (self.originals[k], f"most frequent value (×{n})")
                for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
            ]
        rules = self.span if source == "span" else self.field
        return [(value, str(rule)) for value, rule in rules.propose(view, limit)]


def _rule_key(rule: Rule) -> str:
    """A total, process-independent order of rules (sets of rules iterate in hash order)."""
    return type(rule).__name__ + json.dumps(rule.to_json(), sort_keys=True, default=str)


def _tally(
    candidates: dict[Rule, set[int]], rows: Sequence[tuple[View, Any]], cover: int = 2
) -> list[tuple[Rule, dict[str, int], dict[str, int]]]:
    """Candidate rules with their training tallies (right / wrong values, per previous tool and
    overall), chosen greedily for coverage: the next rule is the one right on the most rows that
    fewer than ``cover`` chosen rules get right, among rules right more often than wrong (overall
    or after some previous tool), so a frequent phrasing cannot crowd out the rules of rarer ones."""
    pool = sorted(candidates.items(), key=lambda kv: (-len(kv[1]), _rule_key(kv[0])))
    pool = [(rule, gen) for rule, gen in pool if len(gen) >= 2][:MAX_CANDIDATES]
    tallied = []
    for rule, _ in pool:
        right: Counter = Counter()
        wrong: Counter = Counter()
        right_rows: set[int] = set()
        for i, (view, value) in enumerate(rows):
            made = rule.apply(view)
            if made is None:
                continue
            ok = key(made) == key(value)
            (right if ok else wrong)[view.prev] += 1
            (right if ok else wrong)["*"] += 1
            if ok:
                right_rows.add(i)
        useful = any(n > wrong.get(prev, 0) for prev, n in right.items())
        if right["*"] >= 2 and useful:
            tallied.append((rule, dict(right), dict(wrong), right_rows))
    covered: Counter = Counter()
    chosen = []
    while tallied and len(chosen) < MAX_RULES:
        gains = [sum(1 for i in t[3] if covered[i] < cover) for t in tallied]
        best = max(range(len(tallied)), key=lambda j: (gains[j], len(tallied[j][3])))
        if gains[best] == 0:
            break
        rule, right, wrong, right_rows = tallied.pop(best)
        chosen.append((rule, right, wrong))
        for i in right_rows:
            covered[i] += 1
    return chosen


def fit_sources(rows: Sequence[tuple[View, Any]], copy: bool = True) -> ArgumentSources:
    """All per-argument sources of one (tool, argument) from its training (view, value) rows."""
    constant: dict[str, Counter] = defaultdict(Counter)
    originals: dict[str, Any] = {}
    spans: dict[Rule, set[int]] = defaultdict(set)
    fields: dict[Rule, set[int]] = defaultdict(set)
    for i, (view, value) in enumerate(rows):
        k = key(value)
        originals.setdefault(k, value)
        constant[view.prev][k] += 1
        constant["*"][k] += 1
        if not copy:
            continue
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = str(value)
            for rule in set(span_candidates(text, view)) | set(shape_candidates(text, view)):
                spans[rule].add(i)
        for rule in set(field_candidates(value, view)):
            fields[rule].add(i)
    return ArgumentSources(
        dict(constant),
        originals,
        RuleSet(_tally(spans, rows)),
        RuleSet(_tally(fields, rows)),
    )


# --------------------------------------------------------------------------- the plan
@dataclass
class Held:
    """Held-out tallies of one source in one context: how often it fired, and was right."""

    fired: int = 0
    right: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else 0.0

    @property
    def precision(self) -> float:
        """P(right | it fired), smoothed toward 0.5 by one pseudo-count each way."""
        return (self.right + 0.5) / (self.fired + 1)


@dataclass
class ToolPlan:
    """How one tool's arguments are filled: per context (previous tool, or "*"), the call-level
    choice (``compose`` or ``memory``) and, per argument, the sources in held-out order."""

    arguments: list[str]
    choice: dict[str, str]  # context → "compose" | "memory"
    order: dict[str, dict[str, list[str]]]  # context → argument → sources, best first
    held: dict[str, dict[str, dict[str, Held]]]  # context → argument (or "@call") → source → tallies

    def context(self, prev: str) -> str:
        return prev if prev in self.choice else "*"


@dataclass
class ArgumentTable:
    """Per tool: fitted sources, whole-call memory and the cross-validated plan."""

    sources: dict[str, dict[str, ArgumentSources]]  # tool → argument → sources
    memory: dict[str, dict[str, Counter]]  # tool → previous tool or "*" → argument-set key counts
    memory_values: dict[str, dict[str, Any]]  # argument-set key → arguments (original values)
    plans: dict[str, ToolPlan]
    copy: bool = True

    def candidates(
        self, tool: str, view: View, spec: ToolSpec | None, limit: int = 3
    ) -> list[tuple[dict, float, str]]:
        """Up to ``limit`` argument sets for ``tool`` here, each with its held-out probability of
        being right and how it was made; every value valid for ``spec`` (when given)."""
        plan = self.plans.get(tool)
        if plan is None:
            return [({}, 0.0, "no training calls")]
        ctx = plan.context(view.prev)
        props = (spec.parameters.get("properties") or {}) if spec else {}
        if plan.choice.get(ctx) == "memory":
            out = []
            held = plan.held[ctx]["@call"]["memory"]
            counts = self.memory[tool].get(view.prev) or self.memory[tool].get("*") or Counter()
            total = sum(counts.values()) or 1
            for rank, (k, n) in enumerate(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]):
                arguments = _cast_all(self.memory_values[k], props)
                if arguments is not None:
                    p = held.precision if rank == 0 else held.precision * n / total
                    out.append((arguments, p, f"memory: the arguments seen most often (×{n})"))
            if out:
                return out
        return self._compose(tool, plan, ctx, view, props, limit)

    def _compose(
        self, tool: str, plan: ToolPlan, ctx: str, view: View, props: dict, limit: int
    ) -> list[tuple[dict, float, str]]:
        per_arg: dict[str, list[tuple[Any, float, str]]] = {}
        for arg in plan.arguments:
            options: list[tuple[Any, float, str]] = []
            seen: set[str] = set()
            for source in plan.order[ctx].get(arg, []):
                held = plan.held[ctx][arg][source]
                for rank, (value, how) in enumerate(self.sources[tool][arg].propose(source, view)):
                    cast = cast_value(value, props[arg]) if arg in props else value
                    if cast is INVALID or key(cast) in seen:
                        continue
                    seen.add(key(cast))
                    options.append((cast, held.precision * (1.0 if rank == 0 else 0.3), f"{source}: {how}"))
            if options:
                per_arg[arg] = options
        best = {arg: options[0] for arg, options in per_arg.items()}
        p = 1.0
        for _, q, _ in best.values():
            p *= q
        how = "; ".join(f"{arg} ← {h}" for arg, (_, _, h) in best.items())
        out = [({arg: v for arg, (v, _, _) in best.items()}, p, how)]
        # alternatives: one argument at a time swapped for its next option, most likely first
        swaps = sorted(
            (
                (options[1][1] / max(options[0][1], 1e-9), arg)
                for arg, options in per_arg.items()
                if len(options) > 1
            ),
            reverse=True,
        )
        for _ratio, arg in swaps[: limit - 1]:
            value, q, h = per_arg[arg][1]
            arguments = {**out[0][0], arg: value}
            out.append((arguments, p / max(best[arg][1], 1e-9) * q, f"{how} (alternative {arg} ← {h})"))
        return out

    def describe(self) -> dict[str, Any]:
        """Per tool and context: the call-level choice and each argument's source order, with the
        held-out accuracy that put it there."""
        out: dict[str, Any] = {}
        for tool, plan in self.plans.items():
            out[tool] = {}
            for ctx, choice in plan.choice.items():
                entry: dict[str, Any] = {"choice": choice}
                call = plan.held[ctx].get("@call", {})
                entry["held_out"] = {s: f"{h.right}/{h.total}" for s, h in call.items()}
                entry["arguments"] = {
                    arg: [
                        f"{s} {plan.held[ctx][arg][s].right}/{plan.held[ctx][arg][s].total}" for s in sources
                    ]
                    for arg, sources in plan.order[ctx].items()
                }
                out[tool][ctx] = entry
        return out


def _cast_all(arguments: dict[str, Any], props: dict[str, Any]) -> dict[str, Any] | None:
    out = {}
    for arg, value in arguments.items():
        cast = cast_value(value, props[arg]) if arg in props else value
        if cast is INVALID:
            return None
        out[arg] = cast
    return out


# --------------------------------------------------------------------------- fitting
@dataclass
class Call:
    trace: int
    tool: str
    arguments: dict[str, Any]
    view: View


def training_calls(traces: Sequence[TraceRecord]) -> list[Call]:
    views = Views()
    return [
        Call(i, step.action.tool_name, step.action.arguments, views.of(record.question, record.trace[:k]))
        for i, record in enumerate(traces)
        for k, step in enumerate(record.trace)
    ]


def _fit_all(calls: Sequence[Call], copy: bool) -> tuple[dict, dict, dict]:
    by_arg: dict[tuple[str, str], list[tuple[View, Any]]] = defaultdict(list)
    memory: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    values: dict[str, Any] = {}
    for call in calls:
        k = key(call.arguments)
        values.setdefault(k, call.arguments)
        memory[call.tool][call.view.prev][k] += 1
        memory[call.tool]["*"][k] += 1
        for arg, value in call.arguments.items():
            by_arg[(call.tool, arg)].append((call.view, value))
    sources: dict[str, dict[str, ArgumentSources]] = defaultdict(dict)
    for (tool, arg), rows in by_arg.items():
        sources[tool][arg] = fit_sources(rows, copy)
    return dict(sources), {t: dict(m) for t, m in memory.items()}, values


def folds_of(n_traces: int, k: int, seed: int = 0) -> list[int]:
    """Fold number of each training trace (seeded, traces never split)."""
    order = list(range(n_traces))
    random.Random(seed).shuffle(order)
    fold = [0] * n_traces
    for position, trace in enumerate(order):
        fold[trace] = position % k
    return fold


def fit_argument_table(
    traces: Sequence[TraceRecord], *, copy: bool = True, folds: int = FOLDS, seed: int = 0
) -> ArgumentTable:
    """Fit every source on all training traces and choose among them by ``folds``-fold
    cross-validation on the same traces (no other data is read)."""
    calls = training_calls(traces)
    fold = (
        folds_of(len(traces), max(2, min(folds, len(traces))), seed)
        if len(traces) >= 2
        else [0] * len(traces)
    )
    n_folds = max(fold) + 1 if fold else 1
    # held-out proposals: per call, per argument, per source, the top value (or None)
    proposals: list[dict[str, dict[str, Any]]] = [dict() for _ in calls]
    memory_hits: list[bool | None] = [None] * len(calls)
    for f in range(n_folds if n_folds > 1 else 0):
        inside = [c for c in calls if fold[c.trace] != f]
        sources, memory, values = _fit_all(inside, copy)
        for i, call in enumerate(calls):
            if fold[call.trace] != f:
                continue
            found = sources.get(call.tool, {})
            for arg in call.arguments:
                got: dict[str, Any] = {}
                if arg in found:
                    for source in ("constant", "span", "field"):
                        top = found[arg].propose(source, call.view, 1)
                        got[source] = top[0][0] if top else None
                proposals[i][arg] = got
            counts = memory.get(call.tool, {})
            counter = counts.get(call.view.prev) or counts.get("*")
            if counter:
                best = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
                memory_hits[i] = best == key(call.arguments)
    sources, memory, values = _fit_all(calls, copy)
    plans = {}
    for tool in sorted(sources.keys() | memory.keys()):
        mine = [i for i, c in enumerate(calls) if c.tool == tool]
        plans[tool] = _plan(tool, mine, calls, proposals, memory_hits, copy)
    return ArgumentTable(sources, memory, values, plans, copy)


def _shrunk(h: Held, toward: Held) -> float:
    """Held-out accuracy pulled toward ``toward``'s by ``SHRINK`` pseudo-calls."""
    return (h.right + SHRINK * toward.accuracy) / (h.total + SHRINK)


def _score(
    held: dict[str, dict[str, Held]], overall: dict[str, dict[str, Held]] | None, arg: str, source: str
) -> tuple[float, float, int]:
    """Sort key of a source for one argument: shrunk accuracy, overall accuracy, preference."""
    h = held[arg][source]
    toward = overall[arg][source] if overall is not None else h
    return (-_shrunk(h, toward), -toward.accuracy, PREFERENCE.index(source))


def _plan(
    tool: str,
    mine: list[int],
    calls: Sequence[Call],
    proposals: list[dict[str, dict[str, Any]]],
    memory_hits: list[bool | None],
    copy: bool,
) -> ToolPlan:
    arguments = sorted({a for i in mine for a in calls[i].arguments})
    per_source = ("constant", "span", "field") if copy else ("constant",)
    contexts: dict[str, list[int]] = {"*": mine}
    by_prev: dict[str, list[int]] = defaultdict(list)
    for i in mine:
        by_prev[calls[i].view.prev].append(i)
    contexts.update({p: rows for p, rows in by_prev.items() if len(rows) >= MIN_SUPPORT})
    choice, order, held_all = {}, {}, {}
    for ctx, rows in contexts.items():
        held: dict[str, dict[str, Held]] = {arg: {s: Held() for s in per_source} for arg in arguments}
        for i in rows:
            gold = calls[i].arguments
            for arg in arguments:
                for source in per_source:
                    value = proposals[i].get(arg, {}).get(source)
                    h = held[arg][source]
                    h.total += 1
                    if value is not None:
                        h.fired += 1
                        h.right += arg in gold and key(value) == key(gold[arg])
        # a previous tool's own accuracy is shrunk toward the tool's overall one (SHRINK pseudo-calls):
        # a handful of calls, often variants of one user's request, must not outvote the rest
        overall = held_all.get("*")
        ranked = {
            arg: sorted(per_source, key=lambda s, a=arg: _score(held, overall, a, s)) for arg in arguments
        }
        # the composed plan's held-out accuracy: first source (in held-out order) that fired
        composed, remembered = Held(), Held()
        for i in rows:
            gold = calls[i].arguments
            ok = True
            for arg in arguments:
                value = next(
                    (v for s in ranked[arg] if (v := proposals[i].get(arg, {}).get(s)) is not None), None
                )
                if (value is None) != (arg not in gold) or (
                    value is not None and key(value) != key(gold[arg])
                ):
                    ok = False
                    break
            composed.total += 1
            composed.fired += 1
            composed.right += ok
            remembered.total += 1
            if memory_hits[i] is not None:
                remembered.fired += 1
                remembered.right += bool(memory_hits[i])
        held_call = {"compose": composed, "memory": remembered}
        held_all[ctx] = {**held, "@call": held_call}
        pull = held_all["*"]["@call"] if ctx != "*" else held_call
        memory_wins = _shrunk(remembered, pull["memory"]) > _shrunk(composed, pull["compose"])
        choice[ctx] = "memory" if memory_wins else "compose"
        order[ctx] = ranked
    return ToolPlan(arguments, choice, order, held_all)


# --------------------------------------------------------------------------- saving
_RULE_KINDS: dict[str, Any] = {"span": SpanRule, "shape": ShapeRule, "field": FieldRule}


def _rules_json(rules: RuleSet) -> list[dict[str, Any]]:
    kinds = {v: k for k, v in _RULE_KINDS.items()}
    return [
        {"kind": kinds[type(r)], "rule": r.to_json(), "right": right, "wrong": wrong}
        for r, right, wrong in rules.rules
    ]


def _rules_from(rows: list[dict[str, Any]]) -> RuleSet:
    out = RuleSet()
    for row in rows:
        rule = _RULE_KINDS[row["kind"]].from_json(row["rule"])
        out.rules.append((rule, dict(row["right"]), dict(row["wrong"])))
    return out


def table_to_json(table: ArgumentTable) -> dict[str, Any]:
    """Everything a fitted argument table holds, as JSON (``speculate fit`` writes it)."""
    return {
        "copy": table.copy,
        "sources": {
            tool: {
                arg: {
                    "constant": {p: dict(c) for p, c in s.constant.items()},
                    "originals": s.originals,
                    "span": _rules_json(s.span),
                    "field": _rules_json(s.field),
                }
                for arg, s in per.items()
            }
            for tool, per in table.sources.items()
        },
        "memory": {tool: {p: dict(c) for p, c in m.items()} for tool, m in table.memory.items()},
        "memory_values": table.memory_values,
        "plans": {
            tool: {
                "arguments": plan.arguments,
                "choice": plan.choice,
                "order": plan.order,
                "held": {
                    ctx: {
                        arg: {s: [h.fired, h.right, h.total] for s, h in per.items()}
                        for arg, per in args.items()
                    }
                    for ctx, args in plan.held.items()
                },
            }
            for tool, plan in table.plans.items()
        },
    }


def table_from_json(data: dict[str, Any]) -> ArgumentTable:
    sources = {
        tool: {
            arg: ArgumentSources(
                {p: Counter(c) for p, c in s["constant"].items()},
                dict(s["originals"]),
                _rules_from(s["span"]),
                _rules_from(s["field"]),
            )
            for arg, s in per.items()
        }
        for tool, per in data["sources"].items()
    }
    plans = {
        tool: ToolPlan(
            list(p["arguments"]),
            dict(p["choice"]),
            {ctx: {a: list(s) for a, s in args.items()} for ctx, args in p["order"].items()},
            {
                ctx: {arg: {s: Held(*map(int, h)) for s, h in per.items()} for arg, per in args.items()}
                for ctx, args in p["held"].items()
            },
        )
        for tool, p in data["plans"].items()
    }
    memory = {tool: {p: Counter(c) for p, c in m.items()} for tool, m in data["memory"].items()}
    return ArgumentTable(sources, memory, dict(data["memory_values"]), plans, bool(data.get("copy", True)))
