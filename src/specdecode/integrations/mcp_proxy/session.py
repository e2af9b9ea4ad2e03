"""One client session (its upstream connection, executor, turns and record) and the recorder
that appends finished turns to a trace JSONL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

from specdecode.errors import InputError
from specdecode.integrations._core import Speculation
from specdecode.integrations.mcp_proxy.config import (
    QUESTION_META_KEY,
    UNKNOWN_QUESTION,
    _call_key,
    _forwardable,
    _forwardable_meta,
    _meta_dict,
    identical,
    observation_text,
    registry_of_tools,
)
from specdecode.integrations.mcp_proxy.upstream import Upstream
from specdecode.jsonl import append_jsonl, write_json
from specdecode.records import ToolCall, TraceRecord, TraceStep
from specdecode.registry import Registry
from specdecode.speculate.executor import ExecutorStats, SpeculativeExecutor
from specdecode.speculate.policy import LaunchPolicy

if TYPE_CHECKING:
    from specdecode.integrations.mcp_proxy.server import MCPProxy

logger = logging.getLogger("specdecode.mcp")


# ---------------------------------------------------------------------- recording
class Recorder:
    """Appends finished turns to a trace JSONL (one process, many sessions: one lock)."""

    def __init__(self, path: Path, tools_path: Path | None):
        self.path, self.tools_path = Path(path), tools_path
        self._lock = threading.Lock()
        self.records = 0

    def tools(self, registry: Registry) -> None:
        """Merge the upstream's tools into the registry file (a failure is a warning)."""
        if self.tools_path is None:
            return
        try:
            self._tools(registry, self.tools_path)
        except (OSError, InputError) as exc:
            logger.warning("cannot write the tools of the recording to %s: %s", self.tools_path, exc)

    def _tools(self, registry: Registry, tools_path: Path) -> None:
        with self._lock:
            known: dict[str, dict[str, Any]] = {}
            if tools_path.is_file():
                with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
                    known = {t["name"]: t for t in json.loads(tools_path.read_text("utf-8"))}
            fresh = {t.name: t.model_dump() for t in registry.tools}
            if all(known.get(n) == t for n, t in fresh.items()):
                return
            write_json(tools_path, list({**known, **fresh}.values()))

    def write(self, record: TraceRecord) -> None:
        with self._lock:
            append_jsonl(self.path, record)
            self.records += 1


# ---------------------------------------------------------------------- one client session
@dataclass
class _Turn:
    index: int
    question: str | None
    steps: list[TraceStep] = field(default_factory=list)


class ProxySession:
    """One client session: its upstream connection, its executor, its turns and its record."""

    def __init__(self, proxy: MCPProxy, upstream: Upstream, label: str, speculate: bool = True):
        self.proxy, self.upstream, self.label = proxy, upstream, label
        self.config = proxy.config
        self.speculate = speculate and self.config.predictor is not None
        self.registry: Registry | None = None
        self._pages: list[types.Tool] = []
        self.executor: SpeculativeExecutor | None = None
        self.speculation: Speculation | None = None
        self.turn: _Turn | None = None
        self.turns = 0
        self.last_event: float | None = None  # the previous result returned (or the turn began)
        self.calls = 0
        self.errors = 0
        self.served: Counter[str] = Counter()  # speculation / upstream
        self._durations: dict[str, float] = {}  # speculative calls' upstream latencies
        self._stats_before: list[ExecutorStats] = []  # of executors replaced by a new tool list
        self._closed = False
        self._loop = asyncio.get_running_loop()

    # ------------------------------------------------------------------ tools
    async def list_tools(self, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        result = await self.upstream.list_tools(_forwardable(params))
        cursor = params.cursor if params is not None else None
        self._pages = list(result.tools) if cursor is None else [*self._pages, *result.tools]
        if result.next_cursor is None:
            first = self.registry is None
            self._set_tools(self._pages)
            if first and self.turn is None:
                self._start_turn(self.config.question, lead_known=True)
        return result

    async def _ensure_registry(self) -> None:
        """The tool list, fetched by the proxy itself when the client called before listing."""
        if self.registry is not None:
            return
        tools: list[types.Tool] = []
        params = None
        for _ in range(100):
            page = await self.upstream.list_tools(params)
            tools.extend(page.tools)
            if page.next_cursor is None:
                break
            params = types.PaginatedRequestParams(cursor=page.next_cursor)
        self._set_tools(tools)

    def _set_tools(self, tools: Sequence[types.Tool]) -> None:
        registry = registry_of_tools(tools, self.config.read_only, name=f"mcp:{self.config.upstream}")
        if self.registry is not None and registry.fingerprint() == self.registry.fingerprint():
            return
        self.registry = registry
        if self.proxy.recorder is not None:
            self.proxy.recorder.tools(registry)
        if self.speculate:
            self._new_executor(registry)

    def _new_executor(self, registry: Registry) -> None:
        if self.executor is not None:
            self._stats_before.append(self.executor.stats)
            self.executor.close()
        config = self.config
        assert config.predictor is not None
        executor = SpeculativeExecutor(
            self.proxy.predictor,  # type: ignore[arg-type]
            registry,
            {},
            k=config.k,
            matcher="exact",
            max_concurrency=config.session_concurrency,
            timeout=config.timeout,
            auto=False,
            policy=LaunchPolicy(config.lam, max(1, config.k), dict(config.costs)),
            admit=self.proxy.limits.admit,
            cancel_unused=True,
        )
        executor.matcher = identical  # a result is served only to the identical request
        tools = {
            spec.name: self._speculative_function(spec.name) for spec in registry.tools if spec.read_only
        }
        self.executor = executor
        self.speculation = Speculation(executor, tools)
        if self.turn is not None:  # keep speculating from where the turn is
            self._begin()

    def _speculative_function(self, name: str) -> Callable[..., Any]:
        """What a speculative call of ``name`` runs (on the executor's own event loop): the
        upstream call on the proxy's loop, where the upstream session lives. An error result is
        raised, never served (the real call runs instead)."""
        loop = self._loop

        async def on_proxy_loop(arguments: dict[str, Any]) -> types.CallToolResult:
            started = time.perf_counter()
            result = await self.upstream.call_tool(name, arguments)
            if result.is_error:
                raise RuntimeError("the speculative call returned an error result")
            self._durations[_call_key(name, arguments)] = time.perf_counter() - started
            return result

        async def speculative(**arguments: Any) -> types.CallToolResult:
            future = asyncio.run_coroutine_threadsafe(on_proxy_loop(arguments), loop)
            return await asyncio.wrap_future(future)  # cancelling this cancels the upstream call

        speculative.__name__ = name
        return speculative

    # ------------------------------------------------------------------ turns
    def _start_turn(self, question: str | None, lead_known: bool) -> None:
        self._end_turn()
        self.turn = _Turn(index=self.turns, question=question)
        self.turns += 1
        self.last_event = time.perf_counter() if lead_known else None
        if lead_known:
            self._begin()

    def _end_turn(self) -> None:
        """Record the turn (if any step) and make sure nothing speculated in it is served later."""
        if self.executor is not None:
            self.executor.end_round()
        self._durations.clear()
        turn, self.turn = self.turn, None
        if turn is None or not turn.steps or self.proxy.recorder is None:
            return
        record = TraceRecord(
            id=f"mcp-{self.label}-{turn.index}",
            question=turn.question or UNKNOWN_QUESTION,
            trace=turn.steps,
            tools=self.registry.names if self.registry is not None else None,
            source="specdecode mcp proxy",
            upstream=self.config.upstream,
        )
        try:
            self.proxy.recorder.write(record)
        except (OSError, InputError) as exc:
            logger.warning("cannot record turn %s: %s", record.id, exc)

    def _begin(self) -> None:
        """Speculate the turn's next call from what the agent has seen so far."""
        if self.executor is None or self.turn is None or self._closed:
            return
        history = [TraceStep(action=s.action, observation=s.observation) for s in self.turn.steps]
        # every time (no de-duplication): two turns may well begin alike
        self.executor.speculate(self.turn.question or UNKNOWN_QUESTION, history)

    # ------------------------------------------------------------------ calls
    async def call_tool(self, params: types.CallToolRequestParams, ctx: Any) -> types.CallToolResult:
        arrived = time.perf_counter()
        name, arguments = params.name, dict(params.arguments or {})
        given = _meta_dict(params.meta)
        question = given.get(QUESTION_META_KEY)
        question = question.strip() if isinstance(question, str) and question.strip() else None
        progress_token = given.get("progressToken", given.get("progress_token"))
        meta = _forwardable_meta(given)
        await self._ensure_registry()
        turn = self.turn
        if (
            turn is None
            or (question is not None and question != turn.question)
            or self.last_event is None
            or arrived - self.last_event > self.config.turn_gap
        ):
            self._start_turn(question or self.config.question, lead_known=False)
        assert self.turn is not None
        turn = self.turn
        actor = arrived - self.last_event if self.last_event is not None else 0.0
        call = ToolCall(tool_name=name, arguments=arguments)
        progress = ctx.session.report_progress if progress_token is not None else None
        self.calls += 1
        timing: dict[str, float] = {}

        async def real() -> types.CallToolResult:
            started = time.perf_counter()
            try:
                return await self.upstream.call_tool(name, arguments, meta or None, progress)
            finally:
                timing["tool"] = time.perf_counter() - started

        try:
            if self.speculation is not None and self._may_speculate(name):
                result, from_real = await self.speculation.acall(name, arguments, real)
            else:
                result, from_real = await real(), True
        except MCPError as exc:
            self.errors += 1
            if exc.error.code == types.CONNECTION_CLOSED:
                self.proxy.upstream_died(self)
            self._record(turn, call, f"MCP error {exc.error.code}: {exc.error.message}", actor, timing, True)
            raise
        served = "upstream" if from_real else "speculation"
        self.served[served] += 1
        if not from_real:
            timing["tool"] = self._durations.pop(_call_key(name, arguments), time.perf_counter() - arrived)
        self._record(turn, call, observation_text(result), actor, timing, from_real, bool(result.is_error))
        return result

    def _may_speculate(self, name: str) -> bool:
        spec = self.registry.get(name) if self.registry is not None else None
        return bool(spec is not None and spec.read_only)

    def _record(
        self,
        turn: _Turn,
        call: ToolCall,
        observation: str,
        actor: float,
        timing: Mapping[str, float],
        from_real: bool,
        is_error: bool = False,
    ) -> None:
        spec = self.registry.get(call.tool_name) if self.registry is not None else None
        extra: dict[str, Any] = {
            "actor_seconds": round(actor, 6),
            "read_only": bool(spec is not None and spec.read_only),
            "served": "upstream" if from_real else "speculation",
        }
        if "tool" in timing:
            extra["tool_seconds"] = round(timing["tool"], 6)
        if is_error:
            extra["is_error"] = True
        turn.steps.append(TraceStep(action=call, observation=observation, **extra))
        if turn is self.turn:
            self.last_event = time.perf_counter()
            self._begin()

    # ------------------------------------------------------------------ stats and close
    def stats(self) -> dict[str, Any]:
        counters = [*self._stats_before, *([self.executor.stats] if self.executor is not None else [])]
        total: dict[str, float] = {}
        for stats in counters:
            for key, value in asdict(stats).items():
                total[key] = total.get(key, 0) + value
        return {
            "session": self.label,
            "speculating": self.speculate,
            "calls": self.calls,
            "errors": self.errors,
            "turns": self.turns,
            "served_from_speculation": self.served["speculation"],
            "hits": int(total.get("hits", 0)),
            "misses": int(total.get("misses", 0)),
            "direct": int(total.get("direct", 0)),
            "launched": int(total.get("launched", 0)),
            "wasted_calls": int(total.get("wasted_calls", 0)),
            "cancelled": int(total.get("cancelled", 0)),
            "refused": int(total.get("refused", 0)),
            "declined": int(total.get("declined", 0)),
            "skipped": int(total.get("skipped", 0)),
            "time_saved_seconds": round(float(total.get("time_saved", 0.0)), 6),
        }

    async def aclose(self) -> None:
        if self._closed:
            return
        self._end_turn()
        self._closed = True
        if self.executor is not None:
            self.executor.close()
        stats = self.stats()
        self.proxy.session_closed(self, stats)
        await self.upstream.aclose()
