"""Judges by name: one place that knows every judge ``compare --judge`` accepts.

A judge is registered with :func:`register_judge`: its name, a line of help and a factory that
takes the judge settings (``model``, ``base_url``, ``api_key_env``, …) and returns a
:class:`~specdecode.evaluate.judges.base.Judge`. LLM judges import their clients only when made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from specdecode.errors import InputError
from specdecode.evaluate.judges.base import DeterministicJudge, Judge


@dataclass(frozen=True)
class JudgeSpec:
    name: str
    help: str
    make: Callable[..., Judge]


JUDGE_SPECS: dict[str, JudgeSpec] = {}


def register_judge(spec: JudgeSpec) -> JudgeSpec:
    """Add (or replace) a judge; returns the spec."""
    JUDGE_SPECS[spec.name] = spec
    return spec


def judge_names() -> list[str]:
    return list(JUDGE_SPECS)


def make_judge(name: str, **settings: Any) -> Judge:
    """The judge called ``name``; LLM judges take their endpoint settings from ``settings`` or
    the environment and fail here (before any model loads) when their key is missing."""
    spec = JUDGE_SPECS.get(name)
    if spec is None:
        raise InputError(f"unknown judge {name!r}: choose {', '.join(judge_names())}")
    return spec.make(**settings)


def _pointwise(provider: str) -> Callable[..., Judge]:
    def make(**settings: Any) -> Judge:
        from specdecode.evaluate.judges.llm import PointwiseJudge

        return PointwiseJudge(provider, **settings)

    return make


def _pairwise(provider: str) -> Callable[..., Judge]:
    def make(**settings: Any) -> Judge:
        from specdecode.evaluate.judges.llm import PairwiseJudge

        return PairwiseJudge(provider, **settings)

    return make


register_judge(
    JudgeSpec(
        "deterministic",
        "the metrics decide (first-call exact, name, name F1)",
        lambda **_: DeterministicJudge(),
    )
)
for _provider in ("gemini", "openai"):
    register_judge(
        JudgeSpec(_provider, f"{_provider} scores each answer with the rubric", _pointwise(_provider))
    )
for _provider in ("gemini", "openai"):
    register_judge(
        JudgeSpec(
            f"pairwise-{_provider}", f"{_provider} compares both answers in both orders", _pairwise(_provider)
        )
    )
