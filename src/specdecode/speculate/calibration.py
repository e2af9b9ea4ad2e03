"""Probabilities that mean what they say: Platt scaling fitted on validation steps, reliability
diagrams and the expected calibration error (ECE) of any predictor's probabilities."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Calibration:
    """``p = sigmoid(a · log q + b)``, ``q`` a candidate's softmax share over the drafts' scores
    (``normalise``: mean token log-probability instead of the sum). Fitted on validation steps."""

    a: float = 1.0
    b: float = 0.0
    normalise: bool = False
    steps: int = 0  # validation steps it was fitted on
    ece: float | None = None  # expected calibration error on those steps

    def shares(self, scores: Sequence[tuple[float, int]]) -> list[float]:
        values = [s / max(n, 1) if self.normalise else s for s, n in scores]
        top = max(values)
        weights = [math.exp(v - top) for v in values]
        total = sum(weights)
        return [w / total for w in weights]

    def probabilities(self, scores: Sequence[tuple[float, int]]) -> list[float]:
        return [sigmoid(self.a * math.log(max(q, 1e-12)) + self.b) for q in self.shares(scores)]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def fit_platt(
    features: Sequence[float], labels: Sequence[bool], iterations: int = 500
) -> tuple[float, float]:
    """Logistic regression of ``labels`` on one feature (Newton's method, a small ridge)."""
    a, b = 1.0, 0.0
    for _ in range(iterations):
        ga = gb = haa = hab = hbb = 0.0
        for x, y in zip(features, labels):
            p = sigmoid(a * x + b)
            w = p * (1 - p)
            ga += (p - y) * x
            gb += p - y
            haa += w * x * x
            hab += w * x
            hbb += w
        haa, hbb = haa + 1e-3, hbb + 1e-3
        det = haa * hbb - hab * hab
        if det <= 0:
            break
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        a, b = a - da, b - db
        if abs(da) + abs(db) < 1e-9:
            break
    return a, b


def reliability(probs: Sequence[float], labels: Sequence[bool], bins: int = 10) -> dict[str, Any]:
    """Reliability diagram (per probability bin: mean predicted, observed rate, count) and the
    expected calibration error."""
    rows = []
    total = len(probs)
    ece = 0.0
    for i in range(bins):
        lo, hi = i / bins, (i + 1) / bins
        inside = [(p, y) for p, y in zip(probs, labels) if lo <= p < hi or (i == bins - 1 and p == 1.0)]
        if not inside:
            continue
        mean = sum(p for p, _ in inside) / len(inside)
        rate = sum(y for _, y in inside) / len(inside)
        ece += len(inside) / total * abs(mean - rate)
        rows.append({"bin": [lo, hi], "predicted": mean, "observed": rate, "n": len(inside)})
    return {"bins": rows, "ece": ece if total else None, "n": total}
