"""``SpeculativeExecutor``: pre-run a live agent's predicted read-only tool calls.

Usage (threads)::

    ex = SpeculativeExecutor(predictor, registry, {"search": search, "wikipedia": wiki})
    ex.start(question)                  # predicts the first call, launches it in the background
    result = ex.call("search", {"query": "..."})   # speculative result on a hit, else the real call
    ...                                 # each call's observation triggers the next speculation
    print(ex.stats)                     # hits, misses, wasted calls, time saved
    ex.close()

From asyncio: ``await ex.acall(name, arguments)`` (tool functions may be ``async def``). A
framework that keeps its own history passes ``auto=False`` and calls ``ex.observe(history)``
(or ``ex.speculate(question, history)``) whenever an observation arrives.

Its guarantees (read-only tools only, exact serving, bounded concurrency, nothing that keeps the
process alive, cancellation of unused work) are listed in docs/speculation.md; the counters in
:class:`ExecutorStats`, the worker pool and the per-call state in :mod:`.executor_state`; how
calls are run (the speculative ones in the pool or on the background loop, the real ones in the
caller's thread) in :mod:`.executor_calls`. This module holds the public API, the launch
decisions and the rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from specdecode.records import ToolCall, TraceStep
from specdecode.registry import Registry
from specdecode.speculate.executor_calls import _CallRunner
from specdecode.speculate.executor_state import (  # noqa: F401 (_plain_function, _run_on_fresh_loop: re-exported)
    ORIGINAL_ATTRIBUTE,
    DaemonPool,
    ExecutorStats,
    _finished,
    _observation_text,
    _plain_function,
    _Round,
    _run_on_fresh_loop,
    _Spec,
)
from specdecode.speculate.match import Matcher, make_matcher
from specdecode.speculate.policy import LaunchPolicy, registry_costs, with_probs
from specdecode.speculate.predictors.base import Predictor, StepContext
from specdecode.speculate.schema import CallGuard

__all__ = ["ORIGINAL_ATTRIBUTE", "ExecutorStats", "SpeculativeExecutor"]


class SpeculativeExecutor(_CallRunner):
    """Run a predictor's guesses of the next tool call ahead of a live agent.

    Args:
        predictor: any :class:`~specdecode.speculate.predictors.Predictor`.
        registry: the tool registry; its ``read_only`` marks decide what may run speculatively.
        tools: tool name → Python function (sync or ``async def``) called with the arguments
            as keyword arguments. A speculative call of a wrapper carrying ``ORIGINAL_ATTRIBUTE``
            runs the plain function it names (a sync one in the executor's own threads).
        k: candidates launched per step (each read-only candidate is one speculative call).
        matcher: which real call a speculative result is served to: ``exact`` (default: same
            tool, equal arguments), ``normalised`` or ``jaccard`` (with ``threshold``).
        serve_match: tool name → matcher for that tool (a per-tool opt-in to a looser match,
            e.g. ``{"search": "normalised"}`` for a search engine that ignores case).
        max_concurrency: speculative calls running at once, at most.
        timeout: seconds a speculative result is waited for (per tool: ``tool_timeouts``).
        auto: after each real call, record it in the history and speculate the next one.
        policy: the launch policy (:class:`~specdecode.speculate.policy.LaunchPolicy`, the one
            replay simulates); default: every read-only candidate, up to ``k``.
        expected_seconds: tool name → expected latency (what a hit hides, for the policy);
            updated from the real calls' durations as the agent runs (default 1 s).
        admit: called with each candidate about to launch (after the policy, with a slot held):
            returns a function to call once the speculative call has really ended, or ``None``
            to refuse it (counted ``skipped``). For limits shared by many executors.
        cancel_unused: cancel speculative calls whose round ends unused (the agent called something
            else) where possible: an ``async def`` call, a sync call still queued.
    """

    def __init__(
        self,
        predictor: Predictor,
        registry: Registry,
        tools: Mapping[str, Callable[..., Any]],
        *,
        k: int = 1,
        matcher: str = "exact",
        threshold: float = 0.8,
        serve_match: Mapping[str, str] | None = None,
        max_concurrency: int = 4,
        timeout: float = 30.0,
        tool_timeouts: Mapping[str, float] | None = None,
        auto: bool = True,
        policy: LaunchPolicy | None = None,
        expected_seconds: Mapping[str, float] | None = None,
        admit: Callable[[ToolCall], Callable[[], None] | None] | None = None,
        cancel_unused: bool = True,
    ):
        self.predictor, self.registry, self.tools = predictor, registry, dict(tools)
        self._guard = CallGuard(registry.tools)
        self.k, self.auto = max(1, k), auto
        self.policy = policy or LaunchPolicy(0.0, self.k, registry_costs(registry))
        self.expected_seconds = dict(expected_seconds or {})
        self.matcher = make_matcher(matcher, threshold)
        self.serve_match: dict[str, Matcher] = {
            tool: make_matcher(name, threshold) for tool, name in (serve_match or {}).items()
        }
        self.max_concurrency = max(1, max_concurrency)
        self.timeout, self.tool_timeouts = timeout, dict(tool_timeouts or {})
        self.admit, self.cancel_unused = admit, cancel_unused
        self.question: str | None = None
        self.offered: list[str] | None = None
        self.history: list[TraceStep] = []
        self._lock = threading.RLock()
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._pool = DaemonPool(self.max_concurrency, "speculative-call")
        self._predict_pool = DaemonPool(1, "speculator")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._real_on_loop = 0  # real calls running on the background loop now
        self._round = _Round(epoch=0, closed=True)
        self._stats = ExecutorStats()
        self.running = 0  # speculative calls running now
        self.max_running = 0  # the most that ever ran at once

    # ------------------------------------------------------------------ public API
    @property
    def stats(self) -> ExecutorStats:
        with self._lock:
            return self._stats

    def start(self, question: str, tools: Sequence[str] | None = None) -> Future:
        """A new episode: forget the history, speculate the first call."""
        with self._lock:
            self.question, self.offered, self.history = question, list(tools) if tools else None, []
        return self.speculate(question, [])

    def observe(self, history: Sequence[TraceStep]) -> Future:
        """The agent's history changed (an observation arrived): speculate the next call."""
        if self.question is None:
            raise RuntimeError("call start(question) before observe(history)")
        return self.speculate(self.question, history)

    def speculate(
        self, question: str, history: Sequence[TraceStep], tools: Sequence[str] | None = None
    ) -> Future:
        """Predict the next call in the background and launch its read-only candidates.

        Returns at once; the future resolves to the candidates launched (none after ``close()``).
        """
        with self._lock:
            if self._closed:
                return _finished([])
            self.question = question
            if tools is not None:
                self.offered = list(tools)
            self.history = list(history)
            self._close_round()
            round_ = _Round(epoch=self._round.epoch + 1)
            self._round = round_
            context = StepContext(
                question=question,
                history=tuple(self.history),
                tools=tuple(self.registry.subset(self.offered)),
                id="live",
                step=len(self.history),
            )
            round_.prediction = self._predict_pool.submit(self._predict_and_launch, round_, context)
            return round_.prediction

    def call(self, name: str, arguments: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """The agent's real call: the speculative result on a hit, else the tool's own result
        (its exceptions are the agent's, as without the executor). After ``close()`` the tool
        runs directly (an ``async def`` one on a fresh event loop)."""
        real = ToolCall(tool_name=name, arguments={**(arguments or {}), **kwargs})
        if self._closed:
            return self._run_real(real)
        entered = time.perf_counter()
        spec = self._claim(real)
        if spec is not None:
            with contextlib.suppress(FutureTimeout):
                spec.future.result(timeout=self._remaining(spec))
            ok, value = self._outcome(spec)
            if ok:
                return self._finish_hit(real, spec, value, entered)
        self._count_real(real)
        started = time.perf_counter()
        result = self._run_real(real)
        self._learn_latency(name, time.perf_counter() - started)
        self._after(real, result)
        return result

    async def acall(self, name: str, arguments: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """:meth:`call` for asyncio agents; sync tool functions run in a worker thread. After
        ``close()`` the tool runs directly."""
        real = ToolCall(tool_name=name, arguments={**(arguments or {}), **kwargs})
        if self._closed:
            return await self._arun_real(real)
        entered = time.perf_counter()
        spec = self._claim(real)
        if spec is not None:
            if not spec.future.done():  # a finished result is taken whatever the time left
                # asyncio.wait, unlike wait_for, neither cancels the future nor misses a done one
                await asyncio.wait({asyncio.wrap_future(spec.future)}, timeout=self._remaining(spec))
            ok, value = self._outcome(spec)
            if ok:
                return self._finish_hit(real, spec, value, entered)
        self._count_real(real)
        started = time.perf_counter()
        result = await self._arun_real(real)
        self._learn_latency(name, time.perf_counter() - started)
        self._after(real, result)
        return result

    def end_round(self) -> None:
        """End the current round without starting another (the agent's turn is over): its
        prediction launches nothing, its unused speculative calls are wasted (and cancelled with
        ``cancel_unused``), and no later call can use them."""
        with self._lock:
            self._close_round()

    def settle(self, timeout: float | None = None) -> list[ToolCall]:
        """Wait for the current prediction (not the calls it launched); the candidates launched."""
        prediction = self._round.prediction
        return prediction.result(timeout=timeout) if prediction is not None else []

    def close(self) -> None:
        """Stop speculating; running speculative calls are abandoned, not awaited.

        Later ``call``/``acall`` run the tool directly — nothing is speculated, matched, counted
        or recorded in the history — and ``speculate``/``start``/``observe`` launch nothing.

        Returns at once, and never strands a real call already running: the background event
        loop (where a thread's ``call`` runs an ``async def`` tool) is stopped now if no real call
        is on it, else by the last such call when it ends, so each gets its tool's own result or
        exception. Until then the abandoned ``async def`` speculative calls may still run on it.
        """
        with self._lock:
            self._closed = True
            self._close_round()
            loop = self._loop if self._real_on_loop == 0 else None
        self._predict_pool.shutdown(cancel_futures=True)
        self._pool.shutdown(cancel_futures=True)
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)

    def __enter__(self) -> SpeculativeExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def hidden_seconds(self, tool: str) -> float:
        """What a hit of ``tool`` is expected to hide: its expected latency."""
        return float(self.expected_seconds.get(tool, 1.0))

    def decide(self, calls: Sequence[ToolCall], probs: Sequence[float] | None = None) -> list[ToolCall]:
        """The candidates the launch policy launches: read-only tools with a function here,
        schema-valid (values cast), worth their cost; counts what it refuses, drops and declines."""
        eligible: list[tuple[ToolCall, float | None]] = []
        for candidate, prob in with_probs(calls, probs):
            if not self._may_speculate(candidate.tool_name):
                self._count(refused=1)
                continue
            call = self._guard.check(candidate)
            if call is None:  # a call that breaks its schema is never launched
                self._count(invalid=1)
                continue
            eligible.append((call, prob))
        chosen = self.policy.choose(eligible, self.hidden_seconds, lambda _tool: True)
        if len(chosen) < len(eligible):
            self._count(declined=len(eligible) - len(chosen))
        return chosen

    def _learn_latency(self, tool: str, seconds: float) -> None:
        """The expected latency of ``tool``: a running mean of its real calls (weight 0.3 new)."""
        with self._lock:
            old = self.expected_seconds.get(tool)
            self.expected_seconds[tool] = seconds if old is None else 0.7 * old + 0.3 * seconds

    def _may_speculate(self, name: str) -> bool:
        spec = self.registry.get(name)
        return bool(spec is not None and spec.read_only and name in self.tools)

    def _predict_and_launch(self, round_: _Round, context: StepContext) -> list[ToolCall]:
        with self._lock:
            if round_.closed or round_ is not self._round:  # superseded while queued: skip
                return []
        try:
            prediction = self.predictor.predict_many([context], self.k)[0]
        except Exception:  # a failing predictor must not hurt the agent
            self._count(errors=1)
            return []
        self._count(predictions=1)
        launched: list[ToolCall] = []
        with self._lock:
            if round_.closed or round_ is not self._round:
                return []
            for call in self.decide(prediction.calls[: self.k], prediction.probs):
                if any(self.serves(s.call, call) for s in round_.specs):
                    continue
                if not self._slots.acquire(blocking=False):
                    self._count(skipped=1)
                    continue
                release = None
                if self.admit is not None:
                    try:
                        release = self.admit(call)
                    except Exception:  # a failing hook refuses, never hurts the agent
                        release = None
                    if release is None:
                        self._slots.release()
                        self._count(skipped=1)
                        continue
                spec = _Spec(call=call, future=Future(), started=time.perf_counter(), release=release)
                round_.specs.append(spec)
                self._count(launched=1)
                self._launch(spec)
                launched.append(call)
        return launched

    def _claim(self, real: ToolCall) -> _Spec | None:
        """Close the round; the launched speculative call matching ``real``, if any."""
        with self._lock:
            round_ = self._round
            if round_.prediction is not None and not round_.prediction.done() and not round_.closed:
                self._count(late=1)
            round_.closed = True
            if not self._may_speculate(real.tool_name):
                return None
            for spec in round_.specs:
                if not spec.used and self.serves(spec.call, real):
                    spec.used = True
                    return spec
            return None

    def serves(self, speculative: ToolCall, real: ToolCall) -> bool:
        """Whether the result of ``speculative`` may be handed to the agent's ``real`` call: by
        the tool's own ``serve_match`` entry, else the executor's ``matcher`` (exact by default)."""
        return self.serve_match.get(real.tool_name, self.matcher)(speculative, real)

    def _finish_hit(self, real: ToolCall, spec: _Spec, value: Any, entered: float) -> Any:
        waited = time.perf_counter() - entered
        duration = (spec.finished or time.perf_counter()) - spec.started
        self._count(hits=1, time_saved=max(0.0, duration - waited))
        self._after(real, value)
        return value

    def _count_real(self, real: ToolCall) -> None:
        if self._may_speculate(real.tool_name):
            self._count(misses=1)
        else:
            self._count(direct=1)

    def _close_round(self) -> None:
        """Count the round's unused speculative calls as wasted and cancel them where the tool
        allows it (an ``async def`` call; a sync call still queued)."""
        round_ = self._round
        round_.closed = True
        for spec in round_.specs:
            if not spec.used:
                spec.used = True  # counted once
                self._count(wasted_calls=1)
                if self.cancel_unused and spec.handle is not None and spec.finished is None:
                    spec.cancelled = True  # before cancel(): its callback may end the call now
                    if spec.handle.cancel() or spec.is_async:
                        self._count(cancelled=1)
                        if spec.is_async:  # a task cancelled before it started never ends itself
                            self._done(spec, False, None)
                    else:
                        spec.cancelled = False  # a sync call already running: it runs to its end
        round_.specs = []

    def _after(self, real: ToolCall, result: Any) -> None:
        with self._lock:
            self._close_round()
        if self.auto and self.question is not None:
            step = TraceStep(action=real, observation=_observation_text(result))
            self.speculate(self.question, [*self.history, step])
