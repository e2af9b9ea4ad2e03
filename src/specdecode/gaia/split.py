"""Level-stratified, seeded train/val/test splits."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

SPLITS = ("train", "val", "test")


def split_counts(n: int, ratios: Sequence[float]) -> list[int]:
    """How many of ``n`` items go to each split; with n ≥ 3 every split gets at least one."""
    raw = [n * r for r in ratios]
    counts = [int(x) for x in raw]
    # Largest remainders first, ties to the earlier split.
    for i in sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))[: n - sum(counts)]:
        counts[i] += 1
    if n >= len(ratios):
        for i in range(len(counts)):
            while counts[i] == 0:
                donor = max(range(len(counts)), key=lambda j: counts[j])
                counts[donor] -= 1
                counts[i] += 1
    return counts


def stratified_split(
    rows: Sequence[dict[str, Any]], ratios: Sequence[float] = (0.75, 0.125, 0.125), seed: int = 42
) -> dict[str, list[dict[str, Any]]]:
    """Split rows (each with ``id`` and ``level``) per level; deterministic for a seed.

    The input order does not matter: rows are sorted by id before the seeded shuffle.
    """
    if len(ratios) != len(SPLITS) or any(r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {list(ratios)}")
    by_level: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_level[row.get("level")].append(row)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
    for level in sorted(by_level, key=lambda lv: (lv is None, lv)):
        group = sorted(by_level[level], key=lambda r: str(r["id"]))
        random.Random(f"{seed}:{level}").shuffle(group)
        start = 0
        for name, count in zip(SPLITS, split_counts(len(group), ratios)):
            out[name].extend(group[start : start + count])
            start += count
    return out
