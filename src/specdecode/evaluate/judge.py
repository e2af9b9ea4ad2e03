"""Judges decide which of two answers is better. The default is deterministic; LLM judges
(Gemini, OpenAI-compatible) plug in through the same ``compare`` method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Verdict:
    """The prototype's comparison fields."""

    base_score: float
    lora_score: float
    winner: str  # "base", "lora" or "tie"
    reason: str


class DeterministicJudge:
    """Scores each answer with the deterministic metrics: first-call exact, then name, then name F1."""

    name = "deterministic"

    def compare(self, example: Any, base: dict[str, Any], lora: dict[str, Any], mode: str) -> Verdict:
        def key(s: dict[str, Any]) -> tuple[float, ...]:
            m = s["metrics"]
            return (
                float(m["first_call_exact"]),
                float(m["first_call_name"]),
                float(m["name_f1"]),
                float(m["parse_ok"]),
            )

        kb, kl = key(base), key(lora)
        score = (lambda k: k[2]) if mode == "trace" else (lambda k: (k[0] + k[1]) / 2)
        if kb == kl:
            return Verdict(score(kb), score(kl), "tie", "same deterministic scores")
        winner = "lora" if kl > kb else "base"
        names = ("first_call_exact", "first_call_name", "name_f1", "parse_ok")
        decided = next(n for n, a, b in zip(names, kb, kl) if a != b)
        return Verdict(score(kb), score(kl), winner, f"{winner} is better on {decided}")


def make_judge(name: str) -> DeterministicJudge:
    """The judge called ``name``; only ``deterministic`` exists so far."""
    from specdecode.errors import InputError

    if name != "deterministic":
        raise InputError(f"judge {name!r} is not available yet; use --judge deterministic")
    return DeterministicJudge()
