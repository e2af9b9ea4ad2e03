"""How far an LLM judge agrees with the deterministic scorer: Cohen's κ and the confusion table
(both computed in :mod:`specdecode.evaluate.metrics`) over compare rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from specdecode.evaluate.judges.base import DeterministicJudge
from specdecode.evaluate.metrics import cohen_kappa, confusion_table

WINNERS = ("base", "lora", "tie")


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
