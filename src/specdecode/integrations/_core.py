"""What every adapter shares: a :class:`Speculation` around one ``SpeculativeExecutor``, and
the signature-preserving :func:`speculative_tool` decorator for plain tool functions.

An adapter sits at two points of an agent framework's loop:

* the model hook (the model call begins): :meth:`Speculation.begin` hands the executor the
  conversation so far (question + steps with their observations) and the executor predicts
  the next call and pre-runs its read-only candidates while the model thinks;
* the tool hook (the framework is about to run a tool): :meth:`Speculation.acall` /
  :meth:`Speculation.call` return the prepared result on a match, else run the framework's
  *own* execution path (validation, hooks, error handling) exactly as without the adapter.

The executor is run with ``auto=False`` (the framework owns the history). Its ``tools`` map
keeps the plain Python functions that speculative calls run; :class:`Speculation` replaces
each entry with a dispatcher that, inside a real call, runs the framework's own execution
instead (a context variable marks the real call). Speculative calls never go through the
dispatcher: the executor runs the plain function it names (``ORIGINAL_ATTRIBUTE``) — a sync
one in the executor's own threads, so a slow call holds its concurrency slot until it really
returns (``asyncio.to_thread`` under a cancelled ``wait_for`` would free the slot early).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from specdecode.records import TraceStep
from specdecode.speculate.executor import ORIGINAL_ATTRIBUTE, ExecutorStats, SpeculativeExecutor


@dataclass
class _RealCall:
    """The framework's own execution of one real tool call (used at most once)."""

    name: str
    run: Callable[[], Any]
    is_async: bool
    used: bool = False


_REAL: ContextVar[_RealCall | None] = ContextVar("specdecode_real_call", default=None)
_ORIGINAL = ORIGINAL_ATTRIBUTE  # the executor's speculative calls run this plain function


def _dispatcher(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """An ``async def`` the executor calls for ``name`` in a real call: the framework's
    execution inside :meth:`Speculation.call`/``acall``, the plain function otherwise (a real
    call made on the executor directly). Speculative calls run the plain function itself."""
    fn_is_async = inspect.iscoroutinefunction(fn)

    async def dispatch(**arguments: Any) -> Any:
        real = _REAL.get()
        if real is not None and real.name == name and not real.used:
            real.used = True
            if real.is_async:
                return await real.run()
            return await asyncio.to_thread(real.run)
        if fn_is_async:
            return await fn(**arguments)
        return await asyncio.to_thread(fn, **arguments)

    setattr(dispatch, _ORIGINAL, fn)
    dispatch.__name__ = getattr(fn, "__name__", name)
    return dispatch


def original_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The plain function behind a dispatcher (or ``fn`` itself)."""
    return getattr(fn, _ORIGINAL, fn)


def question_and_history(question: str | None, steps: Sequence[TraceStep]) -> tuple[str, list[TraceStep]]:
    return (question or "").strip() or "(no question)", list(steps)


class Speculation:
    """One executor serving one framework adapter.

    Args:
        executor: a :class:`~specdecode.speculate.executor.SpeculativeExecutor`; its ``auto``
            is switched off and its ``tools`` entries are wrapped (see the module doc), so give
            each adapter its own executor.
        tools: extra name → plain function entries for the executor's ``tools`` (an entry
            already there wins).
    """

    def __init__(self, executor: SpeculativeExecutor, tools: Mapping[str, Callable[..., Any]] | None = None):
        self.executor = executor
        executor.auto = False
        for name, fn in (tools or {}).items():
            executor.tools.setdefault(name, fn)
        for name, fn in list(executor.tools.items()):
            self._wrap(name, fn)
        self._lock = threading.Lock()
        self._last_key: tuple[Any, ...] | None = None
        self.passed_through = 0  # real calls of tools the executor has no function for

    # ------------------------------------------------------------------ setup
    def _wrap(self, name: str, fn: Callable[..., Any]) -> None:
        if not hasattr(fn, _ORIGINAL):
            self.executor.tools[name] = _dispatcher(name, fn)

    def add_tool(self, name: str, fn: Callable[..., Any]) -> None:
        """Give the executor a plain function for ``name`` unless it has one."""
        if name not in self.executor.tools:
            self._wrap(name, fn)

    @property
    def stats(self) -> ExecutorStats:
        return self.executor.stats

    def may_speculate(self, name: str) -> bool:
        """Whether ``name`` is ever pre-run: marked ``read_only`` and a function is known."""
        spec = self.executor.registry.get(name)
        return bool(spec is not None and spec.read_only and name in self.executor.tools)

    # ------------------------------------------------------------------ model hook
    def begin(
        self, question: str | None, history: Sequence[TraceStep], tools: Sequence[str] | None = None
    ) -> None:
        """The model call begins: predict the next call from the conversation so far and
        pre-run its read-only candidates. A repeat with the same conversation (a retried model
        request) keeps the round already running."""
        question, steps = question_and_history(question, history)
        key = (
            question,
            tuple(
                (s.action.tool_name, repr(sorted(s.action.arguments.items())), s.observation) for s in steps
            ),
        )
        with self._lock:
            if key == self._last_key:
                return
            self._last_key = key
        self.executor.speculate(question, steps, list(tools) if tools else None)

    # ------------------------------------------------------------------ tool hook
    def call(self, name: str, arguments: Mapping[str, Any], real: Callable[[], Any]) -> tuple[Any, bool]:
        """A real tool call from a synchronous framework: ``(result, from_real)`` — the
        prepared result on a match (``from_real`` false), else ``real()``'s."""
        if name not in self.executor.tools:
            self.passed_through += 1
            return real(), True
        marker = _RealCall(name, real, is_async=False)
        token = _REAL.set(marker)
        try:
            value = self.executor.call(name, dict(arguments))
        finally:
            _REAL.reset(token)
        return value, marker.used

    async def acall(
        self, name: str, arguments: Mapping[str, Any], real: Callable[[], Awaitable[Any]]
    ) -> tuple[Any, bool]:
        """:meth:`call` for asyncio frameworks (``real`` returns an awaitable)."""
        if name not in self.executor.tools:
            self.passed_through += 1
            return await real(), True
        marker = _RealCall(name, real, is_async=True)
        token = _REAL.set(marker)
        try:
            value = await self.executor.acall(name, dict(arguments))
        finally:
            _REAL.reset(token)
        return value, marker.used

    def close(self) -> None:
        self.executor.close()


# ---------------------------------------------------------------------- decorator
def speculative_tool(
    executor: SpeculativeExecutor, fn: Callable[..., Any] | None = None, *, name: str | None = None
) -> Any:
    """Route a plain tool function through ``executor`` — any framework, no adapter needed.

    ``@speculative_tool(ex)`` (or ``speculative_tool(ex, fn)``) registers ``fn`` as the
    executor's function for ``name`` (default: ``fn.__name__``) and returns a wrapper with the
    same signature, annotations and docstring (``__wrapped__`` is set, so frameworks derive the
    same JSON schema); sync stays sync, ``async def`` stays ``async def``. Each call is the
    executor's real call: the prepared result on a match, else ``fn`` itself. Use the executor
    in its default ``auto`` mode (it keeps the history from the calls it sees) after
    ``ex.start(question)``.
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        tool_name = name or function.__name__
        executor.tools.setdefault(tool_name, function)
        signature = inspect.signature(function)
        plain = all(
            p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in signature.parameters.values()
        )

        def arguments_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            return dict(signature.bind(*args, **kwargs).arguments)

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if not plain:
                    return await function(*args, **kwargs)
                return await executor.acall(tool_name, arguments_of(args, kwargs))

            return async_wrapper

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not plain:
                return function(*args, **kwargs)
            return executor.call(tool_name, arguments_of(args, kwargs))

        return wrapper

    return decorate(fn) if fn is not None else decorate
