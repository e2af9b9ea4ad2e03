"""Kept for old imports: the judges live in :mod:`specdecode.evaluate.judges`."""

from specdecode.evaluate.judges import JUDGES, DeterministicJudge, Verdict, make_judge

__all__ = ["JUDGES", "DeterministicJudge", "Verdict", "make_judge"]
