"""How far an LLM judge agrees with the deterministic scorer: Cohen's κ and the confusion table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

from specdecode.evaluate.judges.base import DeterministicJudge

WINNERS = ("base", "lora", "tie")


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


def deterministic_winner(row: dict[str, Any]) -> str:
    """What the deterministic judge says for one compare row (from its stored metrics)."""
    verdict = DeterministicJudge().compare(
        None, {"metrics": row["base_metrics"]}, {"metrics": row["lora_metrics"]}, "trace"
    )
    return verdict.winner


def score_bucket(name_f1: float) -> float:
    """The prototype's rubric from the deterministic name F1: 1.0 all right, 0.5 some, 0.0 none."""
    return 1.0 if name_f1 >= 1.0 else (0.5 if name_f1 > 0 else 0.0)


def winner_agreement(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """κ and confusion of the judge's ``winner`` against the deterministic winner.

    Rows whose judge call failed (``error``) are left out and counted; ``inconsistent``
    (pairwise judges) is a label of its own, so it counts as disagreement.
    """
    usable = [r for r in rows if r.get("winner") != "error"]
    judge = [str(r["winner"]) for r in usable]
    reference = [deterministic_winner(r) for r in usable]
    labels = list(WINNERS) + sorted({x for x in judge if x not in WINNERS})
    kappa = cohen_kappa(judge, reference)
    return {
        "n": len(usable),
        "errors": len(rows) - len(usable),
        "kappa": None if kappa is None else round(kappa, 4),
        "observed_agreement": round(sum(x == y for x, y in zip(judge, reference)) / len(usable), 4)
        if usable
        else None,
        "confusion": confusion_table(judge, reference, labels),
        "confusion_axes": "rows: LLM judge winner; columns: deterministic winner",
    }


def score_agreement(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pointwise judges: κ of the judge's 1.0/0.5/0.0 scores against the bucketed name F1."""
    judge: list[str] = []
    reference: list[str] = []
    for row in rows:
        if row.get("winner") == "error":
            continue
        for side in ("base", "lora"):
            judge.append(str(float(row[f"{side}_score"])))
            reference.append(str(score_bucket(float(row[f"{side}_metrics"]["name_f1"]))))
    labels = ["1.0", "0.5", "0.0"]
    kappa = cohen_kappa(judge, reference)
    return {
        "n": len(judge),
        "kappa": None if kappa is None else round(kappa, 4),
        "confusion": confusion_table(judge, reference, labels),
        "confusion_axes": "rows: LLM judge score; columns: deterministic name-F1 bucket",
    }
