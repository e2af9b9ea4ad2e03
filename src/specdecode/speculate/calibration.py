"""Probabilities that mean what they say: Platt scaling fitted on validation steps, reliability
diagrams and the expected calibration error (ECE) of any predictor's probabilities."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

FIT_VERSION = 2  # bumped when fit_platt changes: stored fits of an older version are refitted


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
    features: Sequence[float], labels: Sequence[bool], iterations: int = 100, ridge: float = 1e-2
) -> tuple[float, float]:
    """Logistic regression of ``labels`` on one feature, as Platt fits it: targets smoothed to
    ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` (so separable data keeps a finite slope), a small
    ridge on the slope, and damped Newton steps that never increase the loss."""
    import numpy as np

    x = np.asarray(features, dtype=float)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    t = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(a: float, b: float) -> float:
        z = a * x + b  # cross-entropy against the smoothed targets, written stably
        return float(np.sum(np.logaddexp(0, z) - t * z) + ridge * a * a / 2)

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(a * x + b)))
        w = p * (1 - p)
        ga, gb = float(np.sum((p - t) * x) + ridge * a), float(np.sum(p - t))
        haa, hab, hbb = float(np.sum(w * x * x) + ridge), float(np.sum(w * x)), float(np.sum(w)) + 1e-9
        det = haa * hbb - hab * hab
        if det <= 0:
            break
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        step, trial = 1.0, loss(a - da, b - db)
        while step > 1e-6 and trial > current:
            step /= 2
            trial = loss(a - step * da, b - step * db)
        if trial > current:
            break
        a, b = a - step * da, b - step * db
        previous, current = current, trial
        if previous - current < 1e-10 * max(1.0, abs(current)):
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
