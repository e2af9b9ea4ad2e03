"""Judges decide which of two answers (base model, adapter) is better.

``deterministic`` (the default) uses the metrics; ``gemini`` / ``openai`` score each answer
with the prototype's rubric; ``pairwise-gemini`` / ``pairwise-openai`` compare both answers in
both orders. See :mod:`specdecode.evaluate.judges.llm` for the LLM judges' settings.
"""

from __future__ import annotations

from typing import Any

from specdecode.errors import InputError
from specdecode.evaluate.judges.base import DeterministicJudge, Verdict
from specdecode.evaluate.metrics import cohen_kappa, confusion_table

JUDGES = ("deterministic", "gemini", "openai", "pairwise-gemini", "pairwise-openai")


def make_judge(name: str, **settings: Any) -> Any:
    """The judge called ``name``; LLM judges take their endpoint settings from ``settings`` or
    the environment and fail here (before any model loads) when their key is missing."""
    if name == "deterministic":
        return DeterministicJudge()
    if name not in JUDGES:
        raise InputError(f"unknown judge {name!r}: choose {', '.join(JUDGES)}")
    from specdecode.evaluate.judges.llm import PairwiseJudge, PointwiseJudge

    if name.startswith("pairwise-"):
        return PairwiseJudge(name.removeprefix("pairwise-"), **settings)
    return PointwiseJudge(name, **settings)


__all__ = ["JUDGES", "DeterministicJudge", "Verdict", "cohen_kappa", "confusion_table", "make_judge"]
