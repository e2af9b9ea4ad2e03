"""Deterministic metrics, defined once (DESIGN.md), with bootstrap intervals and McNemar tests."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from specdecode.records import ToolCall

BINARY = ("parse_ok", "first_call_name", "first_call_exact", "seq_exact", "loop", "over_action")
ALL_METRICS = (*BINARY, "name_f1", "args_match")


def normalise(value: Any) -> Any:
    """Keys sorted, strings whitespace-collapsed and case-folded, ints and floats equal by value."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), normalise(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(normalise(v) for v in value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return " ".join(str(value).split()).casefold()


def same_call(a: ToolCall, b: ToolCall) -> bool:
    """Name and arguments equal after normalisation."""
    return a.tool_name == b.tool_name and normalise(a.arguments) == normalise(b.arguments)


def name_f1(gold: Sequence[ToolCall], pred: Sequence[ToolCall]) -> float:
    """F1 of the multisets of tool names (1.0 when both are empty)."""
    g, p = Counter(c.tool_name for c in gold), Counter(c.tool_name for c in pred)
    if not g and not p:
        return 1.0
    overlap = sum((g & p).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / sum(p.values()), overlap / sum(g.values())
    return 2 * precision * recall / (precision + recall)


def args_match(gold: Sequence[ToolCall], pred: Sequence[ToolCall]) -> float | None:
    """Of the positions where names line up, the share whose arguments match (None: no such position)."""
    aligned = [(g, p) for g, p in zip(gold, pred) if g.tool_name == p.tool_name]
    if not aligned:
        return None
    return sum(normalise(g.arguments) == normalise(p.arguments) for g, p in aligned) / len(aligned)


def has_loop(pred: Sequence[ToolCall], repeats: int = 3) -> bool:
    """The same call (name and normalised arguments) ``repeats`` or more times in a row."""
    run = 1
    for prev, cur in itertools.pairwise(pred):
        run = run + 1 if same_call(prev, cur) else 1
        if run >= repeats:
            return True
    return False


def example_metrics(gold: Sequence[ToolCall], pred: Sequence[ToolCall], parse_ok: bool) -> dict[str, Any]:
    """Every per-example metric of DESIGN.md for one gold and one predicted call sequence."""
    first_name = bool(gold and pred and gold[0].tool_name == pred[0].tool_name)
    return {
        "parse_ok": parse_ok,
        "first_call_name": first_name,
        "first_call_exact": bool(gold and pred and same_call(gold[0], pred[0])),
        "seq_exact": [c.tool_name for c in gold] == [c.tool_name for c in pred],
        "name_f1": name_f1(gold, pred),
        "args_match": args_match(gold, pred),
        "loop": has_loop(pred),
        "over_action": len(pred) > len(gold) + 2,
    }


def bootstrap_ci(
    values: Sequence[float], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded, so reports are reproducible; numpy)."""
    import numpy as np

    if not values:
        return (math.nan, math.nan)
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = np.sort(data[rng.integers(0, len(data), size=(n_resamples, len(data)))].mean(axis=1))
    lo = means[math.floor((1 - level) / 2 * n_resamples)]
    hi = means[min(n_resamples - 1, math.ceil((1 + level) / 2 * n_resamples) - 1)]
    return (float(lo), float(hi))


def rate(values: Sequence[Any], seed: int = 0) -> dict[str, Any]:
    """Mean of the defined values (None excluded) with its 95 % bootstrap interval."""
    defined = [float(v) for v in values if v is not None]
    if not defined:
        return {"mean": None, "ci95": [None, None], "n": 0}
    lo, hi = bootstrap_ci(defined, seed=seed)
    return {"mean": sum(defined) / len(defined), "ci95": [lo, hi], "n": len(defined)}


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b (A right, B wrong) and c."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Wins/ties/losses of B against A on paired binary outcomes, with the exact McNemar test."""
    wins = sum(1 for x, y in zip(a, b) if y and not x)
    losses = sum(1 for x, y in zip(a, b) if x and not y)
    return {
        "wins": wins,
        "ties": len(a) - wins - losses,
        "losses": losses,
        "mcnemar_p": mcnemar_exact(losses, wins),
    }


def breakdown(
    rows: Sequence[dict[str, Any]],
    key: Callable[[dict[str, Any]], Any],
    metric: Callable[[dict[str, Any]], Any],
) -> dict[str, dict[str, Any]]:
    """``rate`` of a metric per group (level, gold tool, …)."""
    groups: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        groups[str(key(row))].append(metric(row))
    return {name: rate(values) for name, values in sorted(groups.items())}


def confusion(rows: Sequence[dict[str, Any]], prefix: str = "") -> dict[str, dict[str, int]]:
    """Counts of predicted first tool per gold first tool (``<none>`` when nothing was predicted)."""
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        gold = row["gold_calls"][0]["tool_name"] if row["gold_calls"] else "<none>"
        pred = row[f"{prefix}pred_calls"]
        table[gold][pred[0]["tool_name"] if pred else "<none>"] += 1
    return {g: dict(sorted(c.items())) for g, c in sorted(table.items())}


FAILURE_MODES = ("no_call", "unknown_tool", "wrong_tool", "wrong_arguments", "loop", "over_action")


def failure_modes(rows: Sequence[dict[str, Any]], prefix: str = "") -> dict[str, int]:
    """Failure modes counted over result rows (``{prefix}pred_calls``, ``gold_calls``,
    ``{prefix}unknown_tools``). The first call of each row lands in exactly one of ``correct``,
    ``no_call``, ``unknown_tool``, ``wrong_tool`` or ``wrong_arguments``; ``loop`` and
    ``over_action`` look at the whole prediction and may overlap with them."""
    counts = dict.fromkeys(("examples", "correct", *FAILURE_MODES), 0)
    for row in rows:
        gold = [ToolCall.model_validate(c) for c in row.get("gold_calls") or []]
        pred = [ToolCall.model_validate(c) for c in row.get(f"{prefix}pred_calls") or []]
        unknown = set(row.get(f"{prefix}unknown_tools") or [])
        counts["examples"] += 1
        if not pred:
            counts["correct" if not gold else "no_call"] += 1
        elif not gold or pred[0].tool_name != gold[0].tool_name:
            counts["unknown_tool" if pred[0].tool_name in unknown else "wrong_tool"] += 1
        else:
            counts["correct" if same_call(gold[0], pred[0]) else "wrong_arguments"] += 1
        counts["loop"] += has_loop(pred)
        counts["over_action"] += len(pred) > len(gold) + 2
    return counts


# --- agreement between two raters (an LLM judge and the deterministic scorer) ---


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """κ = (p_o − p_e) / (1 − p_e) for two raters' labels; None when undefined (p_e = 1 or no items)."""
    if len(a) != len(b):
        raise ValueError("both raters need the same number of labels")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in set(ca) | set(cb)) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def confusion_table(judge: Sequence[str], reference: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """``{judge_label: {reference_label: count}}`` over the given labels (rows: the LLM judge)."""
    table = {x: dict.fromkeys(labels, 0) for x in labels}
    for x, y in zip(judge, reference):
        table.setdefault(x, dict.fromkeys(labels, 0))
        table[x][y] = table[x].get(y, 0) + 1
    return table
