"""Cheap predictors fitted on training traces: ``frequency``, ``pattern`` and its ablations.

* ``frequency`` — the most common first tool (step 0) or next tool (later steps), with that tool's
  most frequent whole argument set.
* ``pattern`` — a table of previous tools → next tool, backing off from the last two tools
  (trigram) to the last one (bigram) to none (unigram); arguments from the sources of
  :mod:`specdecode.speculate.arguments` (whole-call memory, per-argument constants, spans and
  shapes copied from the question or observations, fields of structured observations), chosen
  per tool and previous tool by cross-validation on the training traces.
* ``pattern-nocopy`` — ablation: the same table without the copying sources.
* ``bigram-memory`` — ablation: the previous tool → next tool with that tool's most frequent whole
  argument set after that previous tool (else overall).

Every candidate carries a probability: the tool's share in its back-off context times the
held-out accuracy of the argument source (``frequency`` / ``bigram-memory``: the argument set's
share of the tool's training calls). Top-k candidates differ in tools and in arguments. Values
are cast to the offered tool's schema; copied text keeps its case. All save to and load from JSON
(``speculate fit``).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from specdecode.errors import InputError
from specdecode.jsonl import write_json
from specdecode.records import ToolCall, TraceRecord, TraceStep
from specdecode.speculate.arguments import (
    START,
    ArgumentTable,
    Views,
    fit_argument_table,
    key,
    table_from_json,
    table_to_json,
)
from specdecode.speculate.predictors.base import Prediction, Predictor, StepContext
from specdecode.speculate.predictors.registry import PredictorSpec, names, register, spec_of
from specdecode.speculate.schema import cast_arguments

BACK_OFF = 0.5  # probability weight of a tool that only a shorter context has seen


class NGramTools:
    """Previous tools → next tool with back-off (``order`` previous tools at most)."""

    def __init__(self, tables: dict[int, dict[tuple[str, ...], Counter]]):
        self.tables = tables

    @classmethod
    def fit(cls, traces: Sequence[TraceRecord], order: int = 2) -> NGramTools:
        tables: dict[int, dict[tuple[str, ...], Counter]] = {
            n: defaultdict(Counter) for n in range(order + 1)
        }
        for record in traces:
            names_ = [START] * order + [s.action.tool_name for s in record.trace]
            for k in range(len(record.trace)):
                for n in range(order + 1):
                    tables[n][tuple(names_[order + k - n : order + k])][names_[order + k]] += 1
        return cls({n: dict(t) for n, t in tables.items()})

    def ranked(self, context: StepContext) -> list[tuple[str, float]]:
        """Offered tools with their probability: those the longest context has seen first (by
        their share there), then those only shorter contexts have seen (their share discounted by
        ``BACK_OFF`` per level): strict back-off."""
        order = max(self.tables)
        history = [START] * order + context.previous_tools
        allowed = set(context.tool_names)
        out: dict[str, float] = {}  # insertion order: strict back-off
        levels = 0
        for n in range(order, -1, -1):
            counter = self.tables[n].get(tuple(history[len(history) - n :]) if n else (), Counter())
            offered = {t: c for t, c in counter.items() if not allowed or t in allowed}
            total = sum(offered.values())
            if not total:
                continue
            weight = BACK_OFF**levels  # levels: longer contexts that had something to say
            levels += 1
            for tool, count in sorted(offered.items(), key=lambda kv: (-kv[1], kv[0])):
                out.setdefault(tool, weight * count / total)
        return list(out.items())

    def to_json(self) -> dict[str, Any]:
        return {
            str(n): [{"previous": list(k), "next": dict(c)} for k, c in t.items()]
            for n, t in self.tables.items()
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> NGramTools:
        return cls(
            {int(n): {tuple(r["previous"]): Counter(r["next"]) for r in rows} for n, rows in d.items()}
        )


def _cast_args(arguments: dict[str, Any], context: StepContext, tool: str) -> dict[str, Any] | None:
    spec = next((t for t in context.tools if t.name == tool), None)
    return cast_arguments(arguments, (spec.parameters.get("properties") or {}) if spec else {})


class TablePredictor(Predictor):
    """A predictor whose candidates carry probabilities (``scored``)."""

    def scored(self, context: StepContext, k: int = 1) -> list[tuple[ToolCall, float]]:
        raise NotImplementedError

    def predict(self, context: StepContext, k: int = 1) -> list[ToolCall]:
        return [call for call, _ in self.scored(context, k)]

    def predict_many(self, contexts: Sequence[StepContext], k: int = 1) -> list[Prediction]:
        import time

        out = []
        for context in contexts:
            started = time.perf_counter()
            scored = self.scored(context, k)
            out.append(
                Prediction(
                    [c for c, _ in scored], time.perf_counter() - started, probs=[p for _, p in scored]
                )
            )
        return out

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The fitted table itself (hashed): a refit is a new predictor."""
        fitted = json.dumps(self.to_json(), sort_keys=True, default=str)
        return {"name": self.name, "fitted_sha256": hashlib.sha256(fitted.encode()).hexdigest()}


class _Memory:
    """Whole argument sets per tool and previous tool ("*": any), with their original values."""

    def __init__(self, counts: dict[str, dict[str, Counter]], values: dict[str, Any]):
        self.counts, self.values = counts, values

    @classmethod
    def fit(cls, traces: Sequence[TraceRecord]) -> _Memory:
        counts: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        values: dict[str, Any] = {}
        for record in traces:
            for k, step in enumerate(record.trace):
                prev = record.trace[k - 1].action.tool_name if k else START
                kk = key(step.action.arguments)
                values.setdefault(kk, step.action.arguments)
                counts[step.action.tool_name][prev][kk] += 1
                counts[step.action.tool_name]["*"][kk] += 1
        return cls({t: dict(c) for t, c in counts.items()}, values)

    def options(self, tool: str, prev: str | None, limit: int) -> list[tuple[dict[str, Any], float]]:
        per = self.counts.get(tool, {})
        counter = (per.get(prev) if prev is not None else None) or per.get("*") or Counter()
        total = sum(counter.values()) or 1
        ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [(self.values[k], n / total) for k, n in ranked]

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": {t: {p: dict(c) for p, c in per.items()} for t, per in self.counts.items()},
            "values": self.values,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> _Memory:
        counts = {t: {p: Counter(c) for p, c in per.items()} for t, per in d["counts"].items()}
        return cls(counts, dict(d["values"]))


class FrequencyPredictor(TablePredictor):
    """The most common first tool (step 0) or next tool (later), with its most frequent arguments."""

    name = "frequency"

    def __init__(self, first: Counter, later: Counter, memory: _Memory):
        self.first, self.later, self.memory = Counter(first), Counter(later), memory

    @classmethod
    def fit(cls, traces: Sequence[TraceRecord]) -> FrequencyPredictor:
        first, later = Counter(), Counter()
        for record in traces:
            for k, step in enumerate(record.trace):
                (first if k == 0 else later)[step.action.tool_name] += 1
        return cls(first, later, _Memory.fit(traces))

    def scored(self, context: StepContext, k: int = 1) -> list[tuple[ToolCall, float]]:
        allowed = set(context.tool_names)
        main, other = (self.first, self.later) if context.step == 0 else (self.later, self.first)
        out: list[tuple[ToolCall, float]] = []
        seen: set[str] = set()
        for weight, counter in ((1.0, main), (BACK_OFF, other)):
            offered = {t: c for t, c in counter.items() if not allowed or t in allowed}
            total = sum(offered.values()) or 1
            for tool, count in sorted(offered.items(), key=lambda kv: (-kv[1], kv[0])):
                if tool in seen or len(out) >= k:
                    continue
                seen.add(tool)
                for arguments, share in self.memory.options(tool, None, 1):
                    cast = _cast_args(arguments, context, tool)
                    if cast is not None:
                        out.append((ToolCall(tool_name=tool, arguments=cast), weight * count / total * share))
        return out[:k]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "frequency",
            "first": self.first,
            "later": self.later,
            "memory": self.memory.to_json(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FrequencyPredictor:
        return cls(Counter(d["first"]), Counter(d["later"]), _Memory.from_json(d["memory"]))


class PatternPredictor(TablePredictor):
    """Previous tools → next tool (trigram → bigram → unigram), arguments from cross-validated
    sources (``copy=False``: the ``pattern-nocopy`` ablation, memory and constants only)."""

    def __init__(self, tools: NGramTools, arguments: ArgumentTable, name: str = "pattern"):
        self.tools, self.args, self.name = tools, arguments, name
        self.views = Views()

    @classmethod
    def fit(cls, traces: Sequence[TraceRecord], copy: bool = True) -> PatternPredictor:
        return cls(
            NGramTools.fit(traces),
            fit_argument_table(traces, copy=copy),
            "pattern" if copy else "pattern-nocopy",
        )

    def ranked_tools(self, context: StepContext) -> list[str]:
        return [tool for tool, _ in self.tools.ranked(context)]

    def arguments(self, tool: str, context: StepContext) -> dict[str, Any]:
        """The best argument set for ``tool`` here."""
        view = self.views.of(context.question, context.history)
        spec = next((t for t in context.tools if t.name == tool), None)
        return self.args.candidates(tool, view, spec, 1)[0][0]

    def scored(self, context: StepContext, k: int = 1) -> list[tuple[ToolCall, float]]:
        view = self.views.of(context.question, context.history)
        specs = {t.name: t for t in context.tools}
        tools = self.tools.ranked(context)[: max(k, 1)]
        options: list[tuple[ToolCall, float]] = []
        for tool, p_tool in tools:
            for arguments, p_args, _how in self.args.candidates(tool, view, specs.get(tool), 2):
                options.append((ToolCall(tool_name=tool, arguments=arguments), p_tool * p_args))
        if not options:
            return []
        first = options[0]
        # the first candidate is the most likely tool with its best arguments (name hit@1 stays the
        # table's); the rest by probability, duplicates dropped
        rest = sorted(options[1:], key=lambda cp: -cp[1])
        out, seen = [first], {(first[0].tool_name, key(first[0].arguments))}
        for call, p in rest:
            sig = (call.tool_name, key(call.arguments))
            if sig not in seen:
                seen.add(sig)
                out.append((call, p))
        return out[:k]

    def describe(self) -> dict[str, Any]:
        """The fitted table (hashed) and its argument plan: which source fills each argument."""
        return {**super().describe(), "arguments": self.explain()}

    def explain(self) -> dict[str, Any]:
        """Which source fills each argument, per tool and previous tool, and the held-out
        accuracy that chose it (``speculate fit`` prints it)."""
        return self.args.describe()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "version": 2,
            "tools": self.tools.to_json(),
            "arguments": table_to_json(self.args),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PatternPredictor:
        return cls(
            NGramTools.from_json(d["tools"]), table_from_json(d["arguments"]), d.get("kind", "pattern")
        )


class BigramMemoryPredictor(TablePredictor):
    """Ablation: previous tool → next tool, with the whole argument set seen most often with that
    tool after that previous tool (else overall)."""

    name = "bigram-memory"

    def __init__(self, tools: NGramTools, memory: _Memory):
        self.tools, self.memory = tools, memory

    @classmethod
    def fit(cls, traces: Sequence[TraceRecord]) -> BigramMemoryPredictor:
        return cls(NGramTools.fit(traces, order=1), _Memory.fit(traces))

    def scored(self, context: StepContext, k: int = 1) -> list[tuple[ToolCall, float]]:
        prev = context.previous_tools[-1] if context.history else START
        out: list[tuple[ToolCall, float]] = []
        for tool, p_tool in self.tools.ranked(context)[: max(k, 1)]:
            for arguments, share in self.memory.options(tool, prev, 2):
                cast = _cast_args(arguments, context, tool)
                if cast is not None:
                    out.append((ToolCall(tool_name=tool, arguments=cast), p_tool * share))
        if not out:
            return []
        return [out[0], *sorted(out[1:], key=lambda cp: -cp[1])][:k]

    def to_json(self) -> dict[str, Any]:
        return {"kind": "bigram-memory", "tools": self.tools.to_json(), "memory": self.memory.to_json()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BigramMemoryPredictor:
        return cls(NGramTools.from_json(d["tools"]), _Memory.from_json(d["memory"]))


register(
    PredictorSpec(
        "frequency",
        "the most common first / next tool with its most frequent arguments",
        "#9ca3af",
        "table",
        fit=FrequencyPredictor.fit,
        load=FrequencyPredictor.from_json,
    )
)
register(
    PredictorSpec(
        "pattern",
        "previous tools → next tool; arguments from cross-validated sources (memory, constants, "
        "spans, shapes, fields of structured results)",
        "#f59e0b",
        "table",
        fit=PatternPredictor.fit,
        load=PatternPredictor.from_json,
    )
)
register(
    PredictorSpec(
        "pattern-nocopy",
        "ablation: pattern without the copying sources (memory and constants only)",
        "#fcd34d",
        "table",
        fit=lambda traces: PatternPredictor.fit(traces, copy=False),
        load=PatternPredictor.from_json,
    )
)
register(
    PredictorSpec(
        "bigram-memory",
        "ablation: previous tool → next tool with its most frequent whole argument set",
        "#6b7280",
        "table",
        fit=BigramMemoryPredictor.fit,
        load=BigramMemoryPredictor.from_json,
    )
)


def fit_tables(
    traces: Sequence[TraceRecord], out: str | Path | None = None, which: Sequence[str] | None = None
) -> dict[str, Predictor]:
    """Fit every registered table (or those named in ``which``) on training traces; save
    ``NAME.json`` under ``out`` when given."""
    if not traces:
        raise InputError("no training traces to fit")
    predictors: dict[str, Predictor] = {}
    for name in which or names("table"):
        spec = spec_of(name)
        if spec.kind != "table" or spec.fit is None:
            raise InputError(f"{name!r} is not a table predictor")
        predictors[spec.name] = spec.fit(traces)
    if out is not None:
        for name, predictor in predictors.items():
            write_json(Path(out) / f"{name}.json", predictor.to_json())  # type: ignore[attr-defined]
    return predictors


def load_table(path: str | Path) -> Predictor:
    """A fitted table from its JSON file (``DIR/NAME.json``)."""
    from specdecode.inputs import read_json

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise InputError("no fitted predictor here (run `specdecode speculate fit` first)", path)
    try:
        data = read_json(path, "fitted predictor file")
    except InputError as exc:
        raise InputError(f"not a fitted predictor: {exc.detail}", path, exc.line) from None
    if not isinstance(data, dict):
        raise InputError("not a fitted predictor: expected a JSON object", path)
    kind = data.get("kind")
    if kind == "pattern" and "version" not in data:
        kind = "pattern-v1"  # a table fitted before argument sources
    try:
        spec = spec_of(str(kind))
    except InputError:
        raise InputError(f"unknown fitted predictor kind {kind!r}", path) from None
    if spec.load is None:
        raise InputError(f"{kind!r} is not a table predictor", path)
    try:
        predictor = spec.load(data)
        _smoke_test(predictor)
    except Exception as exc:  # any shape the loader or a first prediction cannot use
        raise InputError(
            f"not a fitted {kind} table ({type(exc).__name__}: {exc})".splitlines()[0], path
        ) from None
    return predictor


def _smoke_test(predictor: Predictor) -> None:
    """Predict the first two steps of an empty question: a table of the wrong shape fails here,
    at load time, not in the middle of a replay."""
    first = predictor.predict(StepContext(question="?"), 3)
    history = tuple(TraceStep(action=call) for call in first[:1])
    predictor.predict(StepContext(question="?", history=history, step=len(history)), 3)
