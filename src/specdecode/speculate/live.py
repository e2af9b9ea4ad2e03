"""A live agent run with and without the ``SpeculativeExecutor``, next to replay's prediction.

The actor is a trace replayer: for each recorded trace it thinks for the step's think time
(the step's ``actor_seconds`` when present, else the latency model's draw), then makes the
recorded call. Tools are real Python functions that sleep for their latency (``tool_seconds``
or the latency model) and return the recorded observation. The same traces run twice — tools
called directly, then through the executor — and the measured wall-clock saving is reported
beside what replay's simulator predicts for the same traces, latencies and predictor. Replay
numbers that do not carry over to a live run are what this check is for.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

from specdecode.records import ToolCall, TraceRecord, TraceStep
from specdecode.registry import Registry
from specdecode.results import AgentCheck
from specdecode.speculate.executor import SpeculativeExecutor
from specdecode.speculate.match import make_matcher
from specdecode.speculate.predictors import Predictor, StepContext
from specdecode.speculate.replay import ReplaySettings, replay
from specdecode.speculate.simulate import Distribution, LatencyModel


class Delayed(Predictor):
    """A predictor that takes ``delay`` seconds per prediction (a stand-in for a model's latency)."""

    def __init__(self, inner: Predictor, delay: float):
        self.inner, self.delay, self.name = inner, delay, inner.name

    def predict(self, context: StepContext, k: int = 1) -> list[ToolCall]:
        time.sleep(self.delay)
        return self.inner.predict(context, k)


class RecordedTools:
    """Tool functions that sleep for the step's latency and return the recorded observation.

    ``at(record, k)`` says which step the agent is on; a call equal to that step's recorded call
    returns its observation, any other call (a wrong guess) sleeps its own latency and returns
    an empty result. Thread-safe; counts calls per tool.
    """

    def __init__(self, registry: Registry, latency: LatencyModel, matcher: str = "normalised"):
        self.latency, self.matcher = latency, make_matcher(matcher)
        self.record: TraceRecord | None = None
        self.k = 0
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()
        self.functions = {name: self._make(name) for name in registry.names}

    def at(self, record: TraceRecord, k: int) -> None:
        with self._lock:
            self.record, self.k = record, k

    def seconds(self, record: TraceRecord, k: int, name: str) -> float:
        step = record.trace[k]
        measured = (step.model_extra or {}).get("tool_seconds") if step.action.tool_name == name else None
        return self.latency.tool_time(record.id, k, name, measured)

    def _make(self, name: str):
        def tool(**arguments: Any) -> str:
            with self._lock:
                record, k = self.record, self.k
                self.calls[name] = self.calls.get(name, 0) + 1
            assert record is not None
            time.sleep(self.seconds(record, k, name))
            gold = record.trace[k]
            if self.matcher(ToolCall(tool_name=name, arguments=arguments), gold.action):
                return gold.observation or ""
            return ""

        tool.__name__ = name
        return tool


def actor_seconds(latency: LatencyModel, record: TraceRecord, k: int) -> float:
    """The actor's think time before call ``k``: recorded, else drawn."""
    return latency.actor_time(record.id, k, (record.trace[k].model_extra or {}).get("actor_seconds"))


def run_plain(traces: Sequence[TraceRecord], tools: RecordedTools, latency: LatencyModel) -> float:
    """Every trace with tools called directly; wall-clock seconds."""
    started = time.perf_counter()
    for record in traces:
        for k, step in enumerate(record.trace):
            tools.at(record, k)
            time.sleep(actor_seconds(latency, record, k))  # the actor thinks
            tools.functions[step.action.tool_name](**step.action.arguments)
    return time.perf_counter() - started


def run_speculative(
    traces: Sequence[TraceRecord], tools: RecordedTools, latency: LatencyModel, executor: SpeculativeExecutor
) -> float:
    """Every trace through the executor: speculation starts when each observation arrives."""
    started = time.perf_counter()
    for record in traces:
        history: list[TraceStep] = []
        tools.at(record, 0)
        executor.start(record.question, record.tools)
        for k, step in enumerate(record.trace):
            time.sleep(actor_seconds(latency, record, k))
            result = executor.call(step.action.tool_name, step.action.arguments)
            history.append(TraceStep(action=step.action, observation=result or None))
            if k + 1 < len(record.trace):
                tools.at(record, k + 1)
                executor.observe(history)
    return time.perf_counter() - started


def live_check(
    traces: Sequence[TraceRecord],
    registry: Registry,
    predictor: Predictor,
    latency: LatencyModel,
    name: str = "pattern",
    max_concurrency: int = 4,
    speculator_seconds: float = 0.0,
) -> dict[str, Any]:
    """Replay's predicted saving, then the measured one: the same traces without and with the
    executor. Returns both, the executor's counters and how far apart they are
    (:class:`specdecode.results.AgentCheck`, as written to ``agent.json``).

    ``speculator_seconds`` > 0 makes every prediction take that long (a model's latency)."""
    traces = [t for t in traces if t.trace]
    given: dict[str, Distribution] = {}
    if speculator_seconds > 0:
        predictor = Delayed(predictor, speculator_seconds)
        given = {"*": Distribution("fixed", (speculator_seconds,))}
    with tempfile.TemporaryDirectory() as tmp:
        settings = ReplaySettings(k=1, latency=latency, speculator_latency=given, latency_samples=0)
        predicted = replay(traces, registry, {name: predictor}, tmp, settings)
    sim = predicted[name]["simulation"]  # the dict replay returns (written as ReplaySummary)
    plain = run_plain(traces, RecordedTools(registry, latency), latency)
    tools = RecordedTools(registry, latency)
    # The recorded tools answer from the trace whatever the case or spacing of the arguments, so
    # serving by replay's own (normalised) matcher is safe here and keeps the two comparable;
    # a real agent keeps the executor's default: exact calls only.
    with SpeculativeExecutor(
        predictor,
        registry,
        tools.functions,
        k=1,
        max_concurrency=max_concurrency,
        auto=False,
        matcher="normalised",
    ) as executor:
        speculative = run_speculative(traces, tools, latency, executor)
        stats = executor.stats
    measured = plain - speculative
    expected = sim["time_saved_seconds"]
    error = abs(measured - expected) / expected if expected else float("inf")
    return AgentCheck.new(
        **{
            "predictor": name,
            "traces": len(traces),
            "steps": sum(len(t.trace) for t in traces),
            "wall_without_s": plain,
            "wall_with_s": speculative,
            "measured_saving_s": measured,
            "predicted_saving_s": expected,
            "predicted_baseline_s": sim["baseline_seconds"],
            "predicted_speculative_s": sim["speculative_seconds"],
            "measured_speedup": plain / speculative if speculative else None,
            "predicted_speedup": sim["speedup"],
            "bound": sim["bound"],
            "relative_error": error,
            "within_20_percent": error <= 0.2,
            "hits": stats.hits,
            "misses": stats.misses,
            "wasted_calls": stats.wasted_calls,
            "predicted_wasted_calls": sim["wasted_calls"],
            "executor_time_saved_s": stats.time_saved,
        }
    ).dump()
