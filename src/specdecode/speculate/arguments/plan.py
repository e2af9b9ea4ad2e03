"""The cross-validated argument plan of every tool: which source fills each argument (per
previous tool), held-out tallies, candidates with probabilities; fitting and saving."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from specdecode.records import ToolSpec, TraceRecord
from specdecode.speculate.arguments.sources import (
    ArgumentSources,
    _rules_from,
    _rules_json,
    fit_sources,
)
from specdecode.speculate.arguments.views import View, Views, key
from specdecode.speculate.schema import INVALID, cast_arguments, cast_value

SOURCES = ("memory", "constant", "span", "field")
MIN_SUPPORT = 3  # training calls of a (tool, previous tool) pair before it gets its own plan
SHRINK = 3.0  # pseudo-calls pulling a previous tool's held-out accuracy toward the tool's overall one
PREFERENCE = ("field", "span", "constant")  # ties go to sources that copy (constants memorise)
FOLDS = 5


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
                arguments = cast_arguments(self.memory_values[k], props)
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
