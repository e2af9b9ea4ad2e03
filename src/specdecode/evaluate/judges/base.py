"""The judge interface (:class:`Judge`) and the deterministic judge.

A judge has a ``name``, ``compare(example, base_scored, lora_scored, mode) -> Verdict``,
``summarise(rows) -> dict`` (merged into the compare summary: ``judge_*`` fields of
:class:`specdecode.results.CompareSummary`) and ``fingerprint() -> dict`` (what decides its
verdicts besides its name, e.g. the judge model and base URL, never a key: part of the compare
run's fingerprint). ``Verdict.extra`` holds extra fields for the results row; an LLM judge's
extra field names start with ``judge_``. A verdict ``winner == "error"`` is asked again when
compare resumes the file. Judges are made by name from :mod:`.registry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class Verdict:
    """The prototype's comparison fields, plus ``extra`` fields for the results row."""

    base_score: float
    lora_score: float
    winner: str  # "base", "lora", "tie"; LLM judges also "inconsistent" or "error"
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Judge(Protocol):
    """What ``compare`` needs from a judge (see the module docstring)."""

    name: str

    def compare(self, example: Any, base: dict[str, Any], lora: dict[str, Any], mode: str) -> Verdict: ...

    def summarise(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]: ...

    def fingerprint(self) -> dict[str, Any]: ...


METRIC_ORDER = ("first_call_exact", "first_call_name", "name_f1", "parse_ok")


class DeterministicJudge:
    """Scores each answer with the deterministic metrics: first-call exact, then name, then name F1."""

    name = "deterministic"

    def fingerprint(self) -> dict[str, Any]:
        return {}  # the metrics decide: nothing besides the name

    def summarise(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {}

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
