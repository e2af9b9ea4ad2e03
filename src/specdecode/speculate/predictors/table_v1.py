"""``pattern-v1``: the pattern table as it was before argument sources (kept as an ablation).

A table of previous tools → next tool (trigram → bigram → unigram back-off) whose arguments are
learned per tool and argument: the most frequent value, or a *copy rule* — a span of the question
or of an earlier observation found beside anchors, with fixed text around it. Every candidate
rule is scored on the training calls by reproductions minus wrong values; at prediction the best
rule that fires wins, else the most frequent value. ``pattern`` (:mod:`.table`) replaced it:
its values are schema-true and keep their case, and its sources are chosen by cross-validation.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from specdecode.evaluate.metrics import normalise
from specdecode.records import ToolCall, TraceRecord
from specdecode.speculate.predictors.base import Predictor, StepContext
from specdecode.speculate.predictors.registry import PredictorSpec, register

START = "<s>"
_TOK = re.compile(r"\w+|[^\w\s]", re.UNICODE)
SOURCES = ("question", "observation", "observations")
MAX_RULES = 40  # candidate rules per (tool, argument) checked against the training calls


def _key(value: Any) -> str:
    return json.dumps(normalise(value), ensure_ascii=False)


def _sources(context: StepContext) -> dict[str, str]:
    """Texts an argument may be copied from: the question, the last observation, all earlier ones."""
    observations = [s.observation or "" for s in context.history]
    return {
        "question": context.question,
        "observation": observations[-1] if observations else "",
        "observations": "\n".join(observations[:-1]),
    }


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group().casefold(), m.start(), m.end()) for m in _TOK.finditer(text)]


@dataclass(frozen=True)
class CopyRule:
    """Value = ``pre`` + span of ``source`` after ``left`` and before ``right`` + ``post``.

    ``left`` is ``("^",)`` for the start of the text, ``()`` for a span of exactly ``length``
    tokens ending before ``right``; ``right`` is ``()`` for a span of exactly ``length`` tokens
    after ``left``, ``("$",)`` for the end of the text.
    """

    source: str
    left: tuple[str, ...]
    right: tuple[str, ...]
    pre: str
    post: str
    length: int

    def apply(self, sources: dict[str, str]) -> str | None:
        text = sources.get(self.source) or ""
        toks = _tokens(text)
        if not toks:
            return None
        words = [t[0] for t in toks]
        if not self.left:
            m = len(self.right)
            for q in range(self.length, len(words) - m + 1):
                if tuple(words[q : q + m]) == self.right:
                    return self.pre + text[toks[q - self.length][1] : toks[q - 1][2]] + self.post
            return None
        if self.left == ("^",):
            starts = [0]
        else:
            n = len(self.left)
            starts = [p for p in range(n, len(words)) if tuple(words[p - n : p]) == self.left]
        for p in starts:
            end = None
            if not self.right:
                end = p + self.length if p + self.length <= len(words) else None
            elif self.right == ("$",):
                end = len(words) if len(words) - p <= 2 * self.length + 2 else None
            else:
                m = len(self.right)
                for q in range(p + 1, min(len(words), p + 2 * self.length + 2) + 1):
                    if tuple(words[q : q + m]) == self.right:
                        end = q
                        break
            if end is not None and end > p:
                return self.pre + text[toks[p][1] : toks[end - 1][2]] + self.post
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "left": list(self.left),
            "right": list(self.right),
            "pre": self.pre,
            "post": self.post,
            "length": self.length,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CopyRule:
        return cls(d["source"], tuple(d["left"]), tuple(d["right"]), d["pre"], d["post"], int(d["length"]))


def _longest_common_run(a: list[str], b: list[str]) -> tuple[int, int, int]:
    """(length, start in a, start in b) of the longest common contiguous token run."""
    best = (0, 0, 0)
    prev = [0] * (len(b) + 1)
    for i in range(1, len(a) + 1):
        cur = [0] * (len(b) + 1)
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                cur[j] = prev[j - 1] + 1
                if cur[j] > best[0]:
                    best = (cur[j], i - cur[j], j - cur[j])
        prev = cur
    return best


def _candidate_rules(value: str, sources: dict[str, str]) -> list[CopyRule]:
    """Every copy rule consistent with one training value (anchors of several widths)."""
    vt = _tokens(value)
    if not vt:
        return []
    rules = []
    for name, text in sources.items():
        st = _tokens(text)
        if not st:
            continue
        length, i, j = _longest_common_run([t[0] for t in vt], [t[0] for t in st])
        core = [t for t in vt[i : i + length] if re.match(r"\w", t[0])]
        if not core or (length == 1 and len(core[0][0]) < 3):
            continue
        pre, post = value[: vt[i][1]], value[vt[i + length - 1][2] :]
        words = [t[0] for t in st]
        lefts = [("^",)] if j == 0 else [tuple(words[max(0, j - w) : j]) for w in (1, 2, 3) if j - w >= 0]
        end = j + length
        rights = [(), ("$",)] if end == len(words) else [(), (words[end],)]
        for left in dict.fromkeys(lefts):
            for right in rights:
                rules.append(CopyRule(name, left, right, pre, post, length))
        if end < len(words):
            for w in (1, 2):
                if end + w <= len(words):
                    rules.append(CopyRule(name, (), tuple(words[end : end + w]), pre, post, length))
    return rules


def _cast(value: str, kind: str) -> Any:
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError:
        pass
    return value


@dataclass
class ArgModel:
    """How one argument of one tool is filled."""

    constant: dict[str, Counter]  # previous tool ("*" for any) → counts of values (JSON keys)
    # rule, {"right": reproductions, "wrong": wrong values} per previous tool ("*": all calls)
    rules: list[tuple[CopyRule, dict[str, dict[str, int]]]]
    kind: str  # str, int or float

    def fill(self, context: StepContext, sources: dict[str, str]) -> tuple[Any, str]:
        """The best rule that fires here (net training score for this previous tool, else over
        all calls, > 0), else the most frequent value."""
        prev = context.previous_tools[-1] if context.history else START

        def net(stats: dict[str, dict[str, int]]) -> tuple[int, int]:
            right, wrong = stats["right"], stats["wrong"]
            here = right.get(prev, 0) - wrong.get(prev, 0)
            return (here, right.get("*", 0) - wrong.get("*", 0))

        for rule, stats in sorted(self.rules, key=lambda r: net(r[1]), reverse=True):
            here, overall = net(stats)
            if here < 0 or (here == 0 and overall <= 0):
                continue
            value = rule.apply(sources)
            if value is not None:
                return _cast(value, self.kind), "copy"
        const = self.constant.get(prev) or self.constant.get("*") or Counter()
        if const:
            return json.loads(const.most_common(1)[0][0]), "constant"
        return None, "none"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "constant": {p: dict(c.most_common(5)) for p, c in self.constant.items()},
            "rules": [{"rule": r.to_json(), **c} for r, c in self.rules],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ArgModel:
        return cls(
            constant={p: Counter(c) for p, c in d["constant"].items()},
            rules=[
                (CopyRule.from_json(r["rule"]), {"right": dict(r["right"]), "wrong": dict(r["wrong"])})
                for r in d["rules"]
            ],
            kind=d["kind"],
        )


def _training_calls(traces: Sequence[TraceRecord]):
    from specdecode.speculate.predictors.base import StepContext

    for record in traces:
        for k, step in enumerate(record.trace):
            context = StepContext(record.question, tuple(record.trace[:k]), (), record.id, k, record.level)
            yield context, step.action


def fit_arguments(traces: Sequence[TraceRecord]) -> dict[str, dict[str, ArgModel]]:
    """Per tool and argument: constant counts and copy rules ranked by training reproductions."""
    examples: dict[tuple[str, str], list[tuple[str, Any, dict[str, str]]]] = defaultdict(list)
    for context, call in _training_calls(traces):
        prev = context.previous_tools[-1] if context.history else START
        sources = _sources(context)
        for arg, value in call.arguments.items():
            examples[(call.tool_name, arg)].append((prev, value, sources))
    out: dict[str, dict[str, ArgModel]] = defaultdict(dict)
    for (tool, arg), rows in examples.items():
        constant: dict[str, Counter] = defaultdict(Counter)
        kinds = Counter()
        generated: Counter = Counter()
        for prev, value, sources in rows:
            constant[prev][_key(value)] += 1
            constant["*"][_key(value)] += 1
            kinds[type(value).__name__] += 1
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                for rule in sorted(
                    set(_candidate_rules(str(value), sources)), key=lambda r: json.dumps(r.to_json())
                ):
                    generated[rule] += 1
        kind = kinds.most_common(1)[0][0]
        kind = kind if kind in ("int", "float") else "str"
        rules = []
        for rule, _ in generated.most_common(MAX_RULES):
            right: Counter = Counter()
            wrong: Counter = Counter()
            for prev, value, sources in rows:
                produced = rule.apply(sources)
                if produced is None:
                    continue
                tally = right if _key(_cast(produced, kind)) == _key(value) else wrong
                tally[prev] += 1
                tally["*"] += 1
            if right["*"] >= 2:
                rules.append((rule, {"right": dict(right), "wrong": dict(wrong)}))
        rules.sort(key=lambda r: r[1]["right"]["*"] - r[1]["wrong"].get("*", 0), reverse=True)
        out[tool][arg] = ArgModel(dict(constant), rules, kind)
    return dict(out)


def _rank(counters: Sequence[Counter], offered: Sequence[str]) -> list[str]:
    """Tools by count in the first counter, then the next ones (back-off), offered tools only."""
    allowed = set(offered)
    out: list[str] = []
    for counter in counters:
        for tool, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])):
            if tool not in out and (not allowed or tool in allowed):
                out.append(tool)
    return out


class LegacyPatternPredictor(Predictor):
    """Previous tools → next tool (trigram → bigram → unigram back-off), arguments from
    learned copy rules or the most frequent value (the v1 rules)."""

    name = "pattern-v1"

    def __init__(
        self, tables: dict[int, dict[tuple[str, ...], Counter]], args: dict[str, dict[str, ArgModel]]
    ):
        self.tables, self.args = tables, args

    @classmethod
    def fit(cls, traces: Sequence[TraceRecord], order: int = 2) -> LegacyPatternPredictor:
        tables: dict[int, dict[tuple[str, ...], Counter]] = {
            n: defaultdict(Counter) for n in range(order + 1)
        }
        for record in traces:
            names = [START] * order + [s.action.tool_name for s in record.trace]
            for k in range(len(record.trace)):
                for n in range(order + 1):
                    key = tuple(names[order + k - n : order + k])
                    tables[n][key][names[order + k]] += 1
        return cls({n: dict(t) for n, t in tables.items()}, fit_arguments(traces))

    def ranked_tools(self, context: StepContext) -> list[str]:
        order = max(self.tables)
        names = [START] * order + context.previous_tools
        counters = []
        for n in range(order, -1, -1):
            key = tuple(names[len(names) - n :]) if n else ()
            counters.append(self.tables[n].get(key, Counter()))
        return _rank(counters, context.tool_names)

    def arguments(self, tool: str, context: StepContext) -> dict[str, Any]:
        sources = _sources(context)
        out = {}
        for arg, model in self.args.get(tool, {}).items():
            value, _how = model.fill(context, sources)
            if value is not None:
                out[arg] = value
        return out

    def predict(self, context: StepContext, k: int = 1) -> list[ToolCall]:
        return [
            ToolCall(tool_name=t, arguments=self.arguments(t, context))
            for t in self.ranked_tools(context)[:k]
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "pattern-v1",
            "tables": {
                str(n): [{"previous": list(key), "next": dict(c)} for key, c in t.items()]
                for n, t in self.tables.items()
            },
            "arguments": {
                tool: {a: m.to_json() for a, m in args.items()} for tool, args in self.args.items()
            },
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LegacyPatternPredictor:
        tables = {
            int(n): {tuple(row["previous"]): Counter(row["next"]) for row in rows}
            for n, rows in d["tables"].items()
        }
        args = {
            tool: {a: ArgModel.from_json(m) for a, m in per.items()} for tool, per in d["arguments"].items()
        }
        return cls(tables, args)

    def describe(self) -> dict[str, Any]:
        """The fitted tables and argument rules themselves (hashed): a refit is a new predictor."""
        fitted = json.dumps(self.to_json(), sort_keys=True, default=str)
        return {"name": self.name, "fitted_sha256": hashlib.sha256(fitted.encode()).hexdigest()}


register(
    PredictorSpec(
        "pattern-v1",
        "ablation: the pattern table with the v1 copy rules (no schema casting, no held-out choice)",
        "#b45309",
        "table",
        fit=LegacyPatternPredictor.fit,
        load=LegacyPatternPredictor.from_json,
    )
)
