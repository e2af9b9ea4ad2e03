"""Judges decide which of two answers (base model, adapter) is better.

``deterministic`` (the default) uses the metrics; ``gemini`` / ``openai`` score each answer
with the prototype's rubric; ``pairwise-gemini`` / ``pairwise-openai`` compare both answers in
both orders. See :mod:`specdecode.evaluate.judges.llm` for the LLM judges' settings. Every judge
follows the :class:`Judge` protocol and is made by name from :mod:`.registry`.
"""

from __future__ import annotations

from specdecode.evaluate.judges.base import DeterministicJudge, Judge, Verdict
from specdecode.evaluate.judges.registry import JudgeSpec, judge_names, make_judge, register_judge
from specdecode.evaluate.metrics import cohen_kappa, confusion_table

JUDGES = tuple(judge_names())  # the judges shipped (registered later ones: judge_names())

__all__ = [
    "JUDGES",
    "DeterministicJudge",
    "Judge",
    "JudgeSpec",
    "Verdict",
    "cohen_kappa",
    "confusion_table",
    "judge_names",
    "make_judge",
    "register_judge",
]
