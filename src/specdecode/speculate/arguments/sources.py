"""Fitted per-argument sources of one tool: constants, copy rules and field rules, with their
training tallies (rules chosen greedily for coverage)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from specdecode.speculate.arguments.rules import (
    FieldRule,
    ShapeRule,
    SpanRule,
    field_candidates,
    shape_candidates,
    span_candidates,
)
from specdecode.speculate.arguments.views import View, key

MAX_RULES = 24  # copy rules / field rules kept per argument
MAX_CANDIDATES = 120  # candidate rules per argument checked against every training call


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
