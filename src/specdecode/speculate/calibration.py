"""Probabilities that mean what they say: logistic calibration (Platt scaling, optionally with the
table's prior as a second feature) fitted on validation steps, reliability diagrams and the
expected calibration error (ECE) of any predictor's probabilities."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

FIT_VERSION = 6  # bumped when the fit changes: stored fits of an older version are refitted
PRIOR_FLOOR = 1e-6  # the smallest table probability a candidate's log prior is taken of
MODEL_GATE_P = 0.05  # the model's scores enter only where validation shows them better than the table


@dataclass(frozen=True)
class Calibration:
    """``p = sigmoid(a · log q + prior · log π + b)``: ``q`` a candidate's softmax share over the
    drafts' scores (``normalise``: mean token log-probability instead of the sum), ``π`` the
    table's own probability of the candidate (``prior`` = 0: the model's scores alone). Fitted on
    validation steps."""

    a: float = 1.0
    b: float = 0.0
    normalise: bool = False
    steps: int = 0  # validation steps it was fitted on
    ece: float | None = None  # expected calibration error on those steps
    prior: float = 0.0  # weight of the table's log probability
    generate: bool = True  # add a generated call when no draft is likely enough (chosen on validation)
    versus_table: dict[str, Any] | None = None  # validation hit@1: the best model fit vs the table

    @property
    def uses_model(self) -> bool:
        """Whether the model's scores change any probability (``a`` ≠ 0)."""
        return self.a != 0

    def shares(self, scores: Sequence[tuple[float, int]]) -> list[float]:
        values = [s / max(n, 1) if self.normalise else s for s, n in scores]
        top = max(values)
        weights = [math.exp(v - top) for v in values]
        total = sum(weights)
        return [w / total for w in weights]

    def features(
        self, scores: Sequence[tuple[float, int]], priors: Sequence[float] | None = None
    ) -> list[tuple[float, float]]:
        """(log q, log π) per candidate."""
        priors = priors if priors is not None else [1.0] * len(scores)
        return [
            (math.log(max(q, 1e-12)), math.log(max(p, PRIOR_FLOOR)))
            for q, p in zip(self.shares(scores), priors)
        ]

    def probabilities(
        self, scores: Sequence[tuple[float, int]], priors: Sequence[float] | None = None
    ) -> list[float]:
        return [sigmoid(self.a * x + self.prior * y + self.b) for x, y in self.features(scores, priors)]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def fit_logistic(
    columns: Sequence[Sequence[float]], labels: Sequence[bool], iterations: int = 100, ridge: float = 1e-2
) -> tuple[list[float], float]:
    """Logistic regression of ``labels`` on feature ``columns`` (weights, intercept), as Platt
    fits it: targets smoothed to ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` (so separable data
    keeps finite weights), a small ridge on the weights, and damped Newton steps that never
    increase the loss."""
    import numpy as np

    x = np.column_stack([np.asarray(c, dtype=float) for c in columns] + [np.ones(len(labels))])
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    t = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    penalty = np.full(x.shape[1], ridge)
    penalty[-1] = 0.0  # the intercept is not shrunk

    def loss(w: Any) -> float:
        z = x @ w  # cross-entropy against the smoothed targets, written stably
        return float(np.sum(np.logaddexp(0, z) - t * z) + np.sum(penalty * w * w) / 2)

    w = np.zeros(x.shape[1])
    w[0] = 1.0
    current = loss(w)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(x @ w)))
        gradient = x.T @ (p - t) + penalty * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        try:
            delta = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            break
        step, trial = 1.0, loss(w - delta)
        while step > 1e-6 and trial > current:
            step /= 2
            trial = loss(w - step * delta)
        if trial > current:
            break
        w = w - step * delta
        previous, current = current, trial
        if previous - current < 1e-10 * max(1.0, abs(current)):
            break
    return [float(v) for v in w[:-1]], float(w[-1])


def fit_platt(
    features: Sequence[float], labels: Sequence[bool], iterations: int = 100, ridge: float = 1e-2
) -> tuple[float, float]:
    """Platt scaling: :func:`fit_logistic` on one feature; (slope, intercept)."""
    (a,), b = fit_logistic([features], labels, iterations, ridge)
    return a, b


FEATURE_SETS = (("model",), ("model", "prior"))


def _top_hits(
    calibration: Calibration,
    steps: Sequence[tuple[Sequence[tuple[float, int]], Sequence[float], Sequence[bool]]],
) -> tuple[list[bool], float]:
    """Per step with drafts: whether the most probable draft is right; and the log-loss."""
    hits, loss = [], 0.0
    for scores, priors, labels in steps:
        if not scores:
            continue
        probs = calibration.probabilities(scores, priors)
        hits.append(bool(labels[max(range(len(probs)), key=probs.__getitem__)]))
        for p, label in zip(probs, labels):
            loss -= math.log(min(max(p if label else 1 - p, 1e-12), 1.0))
    return hits, loss


def fit_calibration(
    steps: Sequence[tuple[Sequence[tuple[float, int]], Sequence[float], Sequence[bool]]],
    gate: float = MODEL_GATE_P,
) -> Calibration:
    """The calibration of draft scores from validation steps, each ``(scores, priors, labels)``:
    every draft's (sum of log-probabilities, tokens), the table's probability of it and whether
    it was the actor's call.

    Logistic fits of the model's share (summed or length-normalised scores), alone or with the
    log of the table's prior; only fits whose weights are all non-negative are admissible (a
    draft the model or the table finds likelier never gets a lower probability). The best of them
    (validation hit@1, ties: the lower log-loss) is then held against the table's own
    ranking on the same steps, and the model earns its place only when it is right on
    significantly more of them (more wins than losses, exact McNemar p < ``gate``); otherwise,
    and with nothing to fit, the table is kept (``a`` = 0, ``prior`` = 1: its own ranking; the
    predictor then answers with the table's calls and probabilities and runs no model). The
    comparison is kept in ``versus_table``."""
    from specdecode.evaluate.metrics import paired

    table = Calibration(a=0.0, prior=1.0, steps=len(steps))
    best: tuple[tuple[int, float], Calibration] | None = None
    for normalise in (False, True):
        for features in FEATURE_SETS:
            shape = Calibration(normalise=normalise)
            xs, ys, labels = [], [], []
            for scores, priors, step_labels in steps:
                if scores:
                    for x, y in shape.features(scores, priors):
                        xs.append(x)
                        ys.append(y)
                    labels.extend(step_labels)
            if not labels or all(labels) or not any(labels):
                continue
            columns = {"model": xs, "prior": ys}
            weights, b = fit_logistic([columns[f] for f in features], labels)
            if any(w < 0 for w in weights):
                continue
            named = dict(zip(features, weights))
            fitted = Calibration(
                named.get("model", 0.0), b, normalise, len(steps), prior=named.get("prior", 0.0)
            )
            hits, loss = _top_hits(fitted, steps)
            rank = (sum(hits), -loss)
            if best is None or rank > best[0]:
                best = (rank, fitted)
    if best is None:
        return table
    model = best[1]
    versus = paired(_top_hits(table, steps)[0], _top_hits(model, steps)[0])
    versus = {**versus, "gate": gate, "model_fit": {"a": model.a, "prior": model.prior, "b": model.b}}
    earned = versus["wins"] > versus["losses"] and versus["mcnemar_p"] < gate
    return replace(model if earned else table, versus_table={**versus, "model_chosen": earned})


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
