"""How a ``SpeculativeExecutor`` runs calls: speculative ones in its daemon pool (sync tools)
or on its background event loop (``async def`` tools), each freeing its slot when it really ends;
the agent's real ones in the caller's thread; and its counters' updates."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from specdecode.records import ToolCall
from specdecode.speculate.executor_state import (
    DaemonPool,
    ExecutorStats,
    _plain_function,
    _run_on_fresh_loop,
    _Spec,
)


class _CallRunner:
    """The part of :class:`~specdecode.speculate.executor.SpeculativeExecutor` that runs calls;
    the attributes below are set by its ``__init__``."""

    tools: dict[str, Callable[..., Any]]
    timeout: float
    tool_timeouts: dict[str, float]
    running: int
    max_running: int
    _lock: threading.RLock
    _slots: threading.BoundedSemaphore
    _pool: DaemonPool
    _loop: asyncio.AbstractEventLoop | None
    _closed: bool
    _real_on_loop: int
    _stats: ExecutorStats

    def _count(self, **deltas: float) -> None:
        with self._lock:
            self._stats = replace(
                self._stats, **{key: getattr(self._stats, key) + value for key, value in deltas.items()}
            )

    def _function(self, name: str) -> Callable[..., Any]:
        if name not in self.tools:
            raise KeyError(f"no function for tool {name!r}")
        return self.tools[name]

    def _launch(self, spec: _Spec) -> None:
        """Start one speculative call (its slot is already held; :meth:`_done` frees it).

        A sync function runs in the executor's own pool, so the slot stays held until the
        function really returns; an ``async def`` one is cancelled at its timeout."""
        fn = _plain_function(self.tools[spec.call.tool_name])
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        if inspect.iscoroutinefunction(fn):
            timeout = self.tool_timeouts.get(spec.call.tool_name, self.timeout)
            spec.is_async = True
            spec.handle = asyncio.run_coroutine_threadsafe(
                self._run_async(spec, fn, timeout), self._event_loop()
            )
            return
        try:
            spec.handle = self._pool.submit(self._run_sync, spec, fn)
        except RuntimeError:  # closed
            self._done(spec, False, None)
            return
        spec.handle.add_done_callback(lambda handle: self._never_started(spec, handle))

    def _never_started(self, spec: _Spec, handle: Future) -> None:
        """A queued sync call cancelled before it started: its slot is freed here."""
        if handle.cancelled():
            self._done(spec, False, None)

    def _run_sync(self, spec: _Spec, fn: Callable[..., Any]) -> None:
        """Body of a sync speculative call (in the pool)."""
        try:
            value = fn(**spec.call.arguments)
        except BaseException as exc:  # never reaches the agent
            self._done(spec, False, exc)
        else:
            self._done(spec, True, value)

    async def _run_async(self, spec: _Spec, fn: Callable[..., Any], timeout: float) -> None:
        """Body of an ``async def`` speculative call (on the background loop)."""
        try:
            value = await asyncio.wait_for(fn(**spec.call.arguments), timeout)
        except BaseException as exc:  # never reaches the agent
            self._done(spec, False, exc)
        else:
            self._done(spec, True, value)

    def _done(self, spec: _Spec, ok: bool, value: Any) -> None:
        """A speculative call really ended: publish its outcome, count a failure (unless its
        timeout was counted already) and free its slot."""
        with self._lock:  # atomic with _outcome: a failure is counted once
            if spec.finished is not None:  # already ended (cancelled before it started)
                return
            spec.finished = time.perf_counter()
            self.running -= 1
            if not ok and not spec.timed_out and not spec.cancelled:
                self._count(errors=1)
            if not spec.future.done():
                spec.future.set_result((ok, value))
        self._slots.release()
        if spec.release is not None:
            with contextlib.suppress(Exception):
                spec.release()

    def _outcome(self, spec: _Spec) -> tuple[bool, Any]:
        """The claimed speculative call's ``(ok, value)`` once the agent stopped waiting; one
        not finished yet is marked timed out and counted as an error. Unless ``ok``, the
        call is counted as wasted."""
        with self._lock:
            if spec.future.done() and not spec.future.cancelled():
                ok, value = spec.future.result()
            else:
                spec.timed_out, ok, value = True, False, None
                self._count(errors=1)
            if not ok:
                self._count(wasted_calls=1)
            return ok, value

    def _run_real(self, real: ToolCall) -> Any:
        """Run the agent's real call in this thread (an ``async def`` tool on the background
        loop, or on a fresh one once closed).

        A call on the background loop is registered (atomically with the ``_closed`` check), so
        that :meth:`close` leaves the loop running until the last such call has ended."""
        fn = self._function(real.tool_name)
        if not inspect.iscoroutinefunction(fn):
            return fn(**real.arguments)
        with self._lock:
            loop = None if self._closed else self._event_loop()
            if loop is not None:
                self._real_on_loop += 1
        if loop is None:
            return _run_on_fresh_loop(fn, real.arguments)
        try:
            return asyncio.run_coroutine_threadsafe(fn(**real.arguments), loop).result()
        finally:
            with self._lock:
                self._real_on_loop -= 1
                stop = self._closed and self._real_on_loop == 0
            if stop:  # close() came while this call ran and left the loop to it
                loop.call_soon_threadsafe(loop.stop)

    async def _arun_real(self, real: ToolCall) -> Any:
        """Run the agent's real call from asyncio (a sync tool in a worker thread)."""
        fn = self._function(real.tool_name)
        if inspect.iscoroutinefunction(fn):
            return await fn(**real.arguments)
        return await asyncio.to_thread(fn, **real.arguments)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """The background loop for ``async def`` tools (started on first use)."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="speculative-async", daemon=True).start()
                self._loop = loop
            return self._loop

    def _remaining(self, spec: _Spec) -> float:
        """Seconds left of the speculative call's timeout, counted from its start."""
        limit = self.tool_timeouts.get(spec.call.tool_name, self.timeout)
        return max(0.0, limit - (time.perf_counter() - spec.started))
