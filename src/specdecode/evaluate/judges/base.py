"""The judge interface and the deterministic judge.

A judge has a ``name`` and ``compare(example, base_scored, lora_scored, mode) -> Verdict``; it
may also have ``summarise(rows) -> dict`` (merged into the compare summary) and
``fingerprint() -> dict`` (what decides its verdicts besides its name, e.g. the judge model and
base URL, never a key: part of the compare run's fingerprint). ``Verdict.extra`` holds extra
fields for the results row; an LLM judge's extra field names start with ``judge_``. A verdict
``winner == "error"`` is asked again when compare resumes the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Verdict:
    """The prototype's comparison fields, plus ``extra`` fields for the results row."""

    base_score: float
    lora_score: float
    winner: str  # "base", "lora", "tie"; LLM judges also "inconsistent" or "error"
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)


METRIC_ORDER = ("first_call_exact", "first_call_name", "name_f1", "parse_ok")


class DeterministicJudge:
    """Scores each answer with the deterministic metrics: first-call exact, then name, then name F1."""

    name = "deterministic"

    def compare(self, example: Any, base: dict[str, Any], lora: dict[str, Any], mode: str) -> Verdict:
        def key(s: dict[str, Any]) -> tuple[float, ...]:
            m = s["metrics"]
            return tuple(float(m[name]) for name in METRIC_ORDER)

        kb, kl = key(base), key(lora)
        score = (lambda k: k[2]) if mode == "trace" else (lambda k: (k[0] + k[1]) / 2)
        if kb == kl:
            return Verdict(score(kb), score(kl), "tie", "same deterministic scores")
        winner = "lora" if kl > kb else "base"
        decided = next(n for n, a, b in zip(METRIC_ORDER, kb, kl) if a != b)
        return Verdict(score(kb), score(kl), winner, f"{winner} is better on {decided}")
