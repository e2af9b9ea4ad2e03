"""Stage 7 — speculation: next-call predictors (tables, the LLM speculator, ``verify``), replay of
gold traces step by step with a latency simulation, the launch policy, and the
``SpeculativeExecutor`` that pre-runs read-only calls for a live agent."""

from specdecode.speculate.executor import ExecutorStats, SpeculativeExecutor
from specdecode.speculate.policy import LaunchPolicy
from specdecode.speculate.predictors import Prediction, Predictor, StepContext, registry
from specdecode.speculate.replay import ReplaySettings, replay
from specdecode.speculate.schema import CallGuard

__all__ = [
    "CallGuard",
    "ExecutorStats",
    "LaunchPolicy",
    "Prediction",
    "Predictor",
    "ReplaySettings",
    "SpeculativeExecutor",
    "StepContext",
    "registry",
    "replay",
]
