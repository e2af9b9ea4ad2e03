"""Stages 5–6 — evaluation and base-vs-LoRA comparison."""

from specdecode.evaluate.backends import GenerationConfig, Request, make_backend
from specdecode.evaluate.judges import DeterministicJudge, make_judge
from specdecode.evaluate.metrics import example_metrics, mcnemar_exact, normalise
from specdecode.evaluate.parse import Parsed, parse_calls
from specdecode.evaluate.run import compare, evaluate, load_examples

__all__ = [
    "DeterministicJudge",
    "GenerationConfig",
    "Parsed",
    "Request",
    "compare",
    "evaluate",
    "example_metrics",
    "load_examples",
    "make_backend",
    "make_judge",
    "mcnemar_exact",
    "normalise",
    "parse_calls",
]
