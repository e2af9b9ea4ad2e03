"""The ``SpeculativeExecutor``'s parts: its counters (``ExecutorStats``), its daemon worker pool,
the state of one speculative call and of one round, and small helpers."""

from __future__ import annotations

import asyncio
import contextvars
import json
import queue
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from specdecode.records import ToolCall

# The attribute naming the plain function behind a wrapper (an adapter's dispatcher, see
# ``specdecode.integrations``): speculative calls run that function instead of the wrapper.
ORIGINAL_ATTRIBUTE = "__specdecode_original__"


@dataclass(frozen=True)
class ExecutorStats:
    """Counters of one executor (a snapshot).

    Each speculative call launched ends as exactly one hit or one wasted call (so once its round
    is over, ``launched == hits + wasted_calls``); each real call made before ``close()`` is
    exactly one hit, miss or direct call.

    Attributes:
        predictions: predictor runs that finished (one that raised counts in ``errors``).
        launched: speculative calls started.
        hits: real calls answered by a speculative result.
        misses: real calls of read-only tools that ran for real: no matching speculative call,
            or the matching one failed or was not done within its timeout.
        direct: real calls of tools that are never speculated (not read-only, or no function).
        wasted_calls: speculative calls whose result was not used: no real call matched them
            before their round ended, or the matching one failed or timed out.
        refused: candidates not launched: not read-only, or no such tool function.
        invalid: candidates not launched: their arguments break the tool's JSON schema (after
            casting values to the declared types).
        declined: candidates not launched by the launch policy (``P(c) × hidden seconds <
            λ × cost``, or beyond its launches per step).
        skipped: candidates not launched: no free concurrency slot, or refused by the
            ``admit`` hook (caps shared with other executors, a rate limit).
        late: predictions still running when the real call came (dropped).
        errors: speculative calls that raised, or timed out (an ``async def`` tool past its
            timeout, or a call the agent waited for past it), each counted once whatever the
            call does later; plus predictor runs that raised.
        time_saved: seconds, summed over hits: the speculative call's duration minus the
            agent's wait for it.
        cancelled: wasted speculative calls cancelled when their round ended unused (an
            ``async def`` call, or a sync call still queued). They are not counted in ``errors``.
    """

    predictions: int = 0
    launched: int = 0
    hits: int = 0
    misses: int = 0
    direct: int = 0
    wasted_calls: int = 0
    refused: int = 0
    invalid: int = 0
    declined: int = 0
    skipped: int = 0
    late: int = 0
    errors: int = 0
    time_saved: float = 0.0
    cancelled: int = 0

    @property
    def hit_rate(self) -> float:
        real = self.hits + self.misses
        return self.hits / real if real else 0.0


class DaemonPool:
    """A small pool of daemon worker threads (started as needed, up to ``workers``).

    Unlike :class:`concurrent.futures.ThreadPoolExecutor`, whose threads the interpreter joins
    at exit, nothing here keeps the process alive: work that never returns (a hung speculative
    call or predictor) is abandoned when the program ends."""

    def __init__(self, workers: int, name: str):
        self._workers, self._name = max(1, workers), name
        self._queue: queue.SimpleQueue[tuple[Future, Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` in a worker; its future. RuntimeError after :meth:`shutdown`."""
        future: Future = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._queue.put((future, fn, args))
            if self._idle == 0 and len(self._threads) < self._workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._idle -= 1  # that idle worker takes this item
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            del item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:  # the future carries it
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, fn, args
            with self._lock:
                if self._shutdown:
                    return
                self._idle += 1

    def shutdown(self, cancel_futures: bool = True) -> None:
        """Take no more work; cancel what has not started. Never waits for running work."""
        with self._lock:
            self._shutdown = True
            threads = len(self._threads)
        while cancel_futures:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in range(threads):
            self._queue.put(None)


@dataclass
class _Spec:
    call: ToolCall
    future: Future
    started: float
    finished: float | None = None
    used: bool = False  # claimed by a real call, or counted wasted
    timed_out: bool = False  # the agent gave up waiting (its error is already counted)
    release: Callable[[], None] | None = None  # what the admit hook hands back, called once at the end
    cancelled: bool = False  # its round ended unused and the call was cancelled (not an error)
    handle: Future | None = None  # the running call (pool future or the coroutine's future)
    is_async: bool = False  # an ``async def`` call (cancellable while it runs)


@dataclass
class _Round:
    epoch: int
    prediction: Future | None = None
    specs: list[_Spec] = field(default_factory=list)
    closed: bool = False


def _observation_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(result)


def _plain_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The function a speculative call runs: the one behind a dispatcher, else ``fn``."""
    return getattr(fn, ORIGINAL_ATTRIBUTE, fn)


def _finished(value: Any) -> Future:
    """A future that is already resolved to ``value``."""
    future: Future = Future()
    future.set_result(value)
    return future


def _run_on_fresh_loop(fn: Callable[..., Any], arguments: Mapping[str, Any]) -> Any:
    """Run ``fn(**arguments)`` to completion on a new event loop, in a helper thread (with a
    copy of this thread's context) when this thread already runs one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fn(**arguments))
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1, thread_name_prefix="closed-executor-call") as pool:
        return pool.submit(context.run, asyncio.run, fn(**arguments)).result()
