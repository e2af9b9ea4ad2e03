"""A live agent loop with and without the SpeculativeExecutor, next to replay's prediction.

The actor is a trace replayer: for each recorded trace it thinks for the step's think time
(``actor_seconds`` of the trace step when present, else ``--actor-latency``), then makes the
recorded call. Tools are real Python functions that sleep for their latency (``tool_seconds``
or ``--tool-latency``) and return the recorded observation. The same traces run twice — tools
called directly, then through the executor with a fitted pattern predictor — and the measured
wall-clock saving is printed beside what ``replay``'s simulator predicts for the same traces,
latencies and predictor.

    python examples/speculative_agent.py                        # synthetic traces, ~10 s
    python examples/speculative_agent.py --test runs/demo/traces/test.jsonl \
        --train runs/demo/traces/train.jsonl --registry tools4
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from specdecode import SpeculativeExecutor
from specdecode.data.synth import synthesize
from specdecode.jsonl import read_records
from specdecode.records import ToolCall, TraceRecord, TraceStep
from specdecode.registry import Registry, load_registry
from specdecode.speculate.match import make_matcher
from specdecode.speculate.predictors import Predictor, StepContext, fit_tables
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
    return latency.actor_time(record.id, k, (record.trace[k].model_extra or {}).get("actor_seconds"))


def run_plain(traces: list[TraceRecord], tools: RecordedTools, latency: LatencyModel) -> float:
    """Every trace with tools called directly; wall-clock seconds."""
    started = time.perf_counter()
    for record in traces:
        for k, step in enumerate(record.trace):
            tools.at(record, k)
            time.sleep(actor_seconds(latency, record, k))  # the actor thinks
            tools.functions[step.action.tool_name](**step.action.arguments)
    return time.perf_counter() - started


def run_speculative(
    traces: list[TraceRecord], tools: RecordedTools, latency: LatencyModel, executor: SpeculativeExecutor
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--train", type=Path, help="training traces for the pattern table (default: synthetic)"
    )
    parser.add_argument("--test", type=Path, help="traces the agent replays (default: synthetic)")
    parser.add_argument("--n", type=int, default=20, help="synthetic test traces (default 20)")
    parser.add_argument("--registry", default="tools4")
    parser.add_argument("--predictor", default="pattern", choices=["pattern", "frequency"])
    parser.add_argument("--actor-latency", default="fixed:0.06", help="actor think time per step")
    parser.add_argument(
        "--tool-latency",
        action="append",
        default=None,
        help="tool latency, DIST or NAME=DIST, repeatable "
        "(default uniform:0.01,0.05 and final_answer=fixed:0)",
    )
    parser.add_argument(
        "--speculator-latency",
        type=float,
        default=0.0,
        help="seconds each prediction takes (a stand-in for a model speculator; default 0: the table's own)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    registry = load_registry(args.registry)
    train = read_records(args.train, TraceRecord) if args.train else synthesize(120, 0, args.registry)
    test = read_records(args.test, TraceRecord) if args.test else synthesize(args.n, 1, args.registry)
    tool_specs = args.tool_latency or ["uniform:0.01,0.05", "final_answer=fixed:0"]
    latency = LatencyModel.from_specs(args.actor_latency, tool_specs, seed=args.seed)
    predictor = fit_tables(train)[args.predictor]
    given = {}
    if args.speculator_latency > 0:
        predictor = Delayed(predictor, args.speculator_latency)
        given = {"*": Distribution("fixed", (args.speculator_latency,))}

    with tempfile.TemporaryDirectory() as tmp:
        settings = ReplaySettings(k=1, latency=latency, speculator_latency=given, latency_samples=0)
        predicted = replay(test, registry, {args.predictor: predictor}, tmp, settings)
    sim = predicted[args.predictor]["simulation"]

    tools = RecordedTools(registry, latency)
    plain = run_plain(test, tools, latency)
    tools = RecordedTools(registry, latency)
    with SpeculativeExecutor(
        predictor, registry, tools.functions, k=1, max_concurrency=4, auto=False
    ) as executor:
        speculative = run_speculative(test, tools, latency, executor)
        stats = executor.stats
    measured = plain - speculative
    expected = sim["time_saved_seconds"]
    error = abs(measured - expected) / expected if expected else float("inf")
    result = {
        "traces": len(test),
        "steps": sum(len(t.trace) for t in test),
        "wall_without_s": plain,
        "wall_with_s": speculative,
        "measured_saving_s": measured,
        "predicted_saving_s": expected,
        "predicted_baseline_s": sim["baseline_seconds"],
        "measured_speedup": plain / speculative,
        "predicted_speedup": sim["speedup"],
        "relative_error": error,
        "within_20_percent": error <= 0.2,
        "hits": stats.hits,
        "misses": stats.misses,
        "wasted_calls": stats.wasted_calls,
        "predicted_wasted_calls": sim["wasted_calls"],
        "executor_time_saved_s": stats.time_saved,
    }
    print(f"{len(test)} traces, {result['steps']} steps, predictor {args.predictor}")
    print(f"  without executor  {plain:7.3f} s   (simulated {sim['baseline_seconds']:.3f} s)")
    print(f"  with executor     {speculative:7.3f} s   (simulated {sim['speculative_seconds']:.3f} s)")
    print(f"  saving measured   {measured:7.3f} s   predicted {expected:.3f} s   ({100 * error:.1f} % apart)")
    print(
        f"  speed-up measured {plain / speculative:.3f}x, predicted {sim['speedup']:.3f}x "
        f"(bound {sim['bound']:.3f}x); hits {stats.hits}, misses {stats.misses}, "
        f"wasted calls {stats.wasted_calls} (predicted {sim['wasted_calls']})"
    )
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))
    return result


if __name__ == "__main__":
    main()
