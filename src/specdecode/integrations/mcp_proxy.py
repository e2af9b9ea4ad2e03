"""A speculative MCP proxy: speculation for any agent that gets its tools from an MCP server.

The client talks to the proxy as if it were the MCP server (stdio or streamable HTTP); the proxy
forwards every request to the real server (the *upstream*: a command it starts, or a URL) and,
between calls, pre-runs the read-only calls its speculator expects through a
:class:`~specdecode.speculate.executor.SpeculativeExecutor` and the launch policy — so a hit is
answered at once with the upstream's own result. Usage (the CLI is ``specdecode mcp proxy``)::

    proxy = MCPProxy(ProxyConfig(upstream="python server.py", predictor=table, record="t.jsonl"))
    anyio.run(proxy.serve_stdio)            # or proxy.serve_http(host, port)

Guarantees:

* tools are listed unchanged and every real call goes to the upstream (or is answered by a
  speculative result of the *identical* call: exact tool name and arguments);
* only tools marked read-only are ever called speculatively: a ``--read-only-file`` entry, else
  the tool's ``readOnlyHint`` annotation; a tool with neither is never pre-run;
* one upstream connection and one executor per client session: a speculative result is only
  served within the round (the observation) and the turn it was launched in, never to another
  session or client; unused speculative calls are cancelled when their round ends;
* limits shared by all sessions (concurrent speculative calls, per tool and in all, and a rate
  of speculative calls per second) and a timeout per speculative call;
* errors reach the client as the upstream sent them (an upstream that fails to start or dies
  gives ``Connection closed``, as without the proxy); a broken session never stops the others;
* with ``record``, each turn is appended to a trace JSONL that ``speculate fit``, ``train`` and
  ``speculate replay`` read (the upstream's tools go to a registry JSON beside it).

A turn is one question's run of calls: it starts when the session lists its tools, when a call
carries a new question in its ``_meta`` (key :data:`QUESTION_META_KEY`), or when a call comes more
than ``turn_gap`` seconds after the previous result. Each recorded step carries
``actor_seconds`` (the previous result returned → this call arrived: the agent's think time;
0 when a turn starts without a moment the proxy saw, so replay assumes no time to speculate, as
live) and ``tool_seconds`` (the upstream's latency for the call).

The proxy does not relay server-to-client requests (sampling, elicitation, roots) or upstream
notifications other than progress; see docs/integrations.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from specdecode.errors import InputError
from specdecode.integrations._core import Speculation
from specdecode.jsonl import append_jsonl, write_json
from specdecode.records import ToolCall, ToolSpec, TraceRecord, TraceStep
from specdecode.registry import Registry, _schema_problem
from specdecode.speculate.executor import ExecutorStats, SpeculativeExecutor
from specdecode.speculate.policy import LaunchPolicy
from specdecode.speculate.predictors.base import Prediction, Predictor, StepContext

logger = logging.getLogger("specdecode.mcp")

QUESTION_META_KEY = "specdecode/question"  # a call's ``_meta`` entry naming the user's question
STATS_URI = "specdecode://stats"
UNKNOWN_QUESTION = "(question not known to the proxy)"
_SESSION_STATE = "specdecode.mcp_proxy"  # the key of a connection's ProxySession
_OPEN_SCHEMA = {"type": "object", "properties": {}}


# ---------------------------------------------------------------------- configuration
@dataclass
class ProxyConfig:
    """What one proxy serves and how it speculates.

    Attributes:
        upstream: the real MCP server: a command line (started once per client session) or an
            ``http(s)://`` URL of a streamable HTTP endpoint (one upstream session per client
            session).
        predictor: the speculator (any predictor; ``None``: record-only, nothing is pre-run).
        k: candidates per step the launch policy considers.
        lam: the launch policy's λ (0: launch every read-only candidate, up to ``k``).
        costs: tool → cost of a wasted call (the policy; default 1).
        read_only: tool → explicit read-only mark (from ``--read-only-file``); wins over the
            tool's ``readOnlyHint``.
        record: trace JSONL to append each finished turn to (``None``: nothing recorded).
        record_tools: registry JSON of the upstream's tools (default: beside ``record``).
        question: the question of every turn unless a call's ``_meta`` names one.
        session_concurrency: speculative calls running at once in one session.
        max_concurrency: speculative calls running at once in all sessions.
        tool_concurrency: speculative calls of one tool running at once in all sessions.
        tool_limits: tool → its own cap (instead of ``tool_concurrency``).
        rate: speculative calls started per second in all sessions (token bucket; 0: no limit).
        timeout: seconds a speculative call may take (then it is cancelled; the real call runs).
        turn_gap: seconds between a result and the next call after which a new turn starts.
        upstream_errlog: where a started upstream's stderr goes.
    """

    upstream: str
    predictor: Predictor | None = None
    k: int = 1
    lam: float = 0.0
    costs: Mapping[str, float] = field(default_factory=dict)
    read_only: Mapping[str, bool] = field(default_factory=dict)
    record: Path | None = None
    record_tools: Path | None = None
    question: str | None = None
    session_concurrency: int = 4
    max_concurrency: int = 16
    tool_concurrency: int = 2
    tool_limits: Mapping[str, int] = field(default_factory=dict)
    rate: float = 10.0
    timeout: float = 30.0
    turn_gap: float = 120.0
    upstream_errlog: Any = None

    def __post_init__(self) -> None:
        if not self.upstream or not self.upstream.strip():
            raise InputError("--upstream: give the MCP server's command line or its http(s) URL")
        if not is_url(self.upstream):
            try:
                shlex.split(self.upstream)
            except ValueError as exc:
                raise InputError(f"--upstream: not a command line ({exc}): {self.upstream!r}") from None
        if self.record is not None:
            self.record = Path(self.record)
            if self.record_tools is None:
                self.record_tools = tools_path_for(self.record)
            for path in (self.record, Path(self.record_tools)):
                if path.is_dir():
                    raise InputError("--record: is a directory, expected a file to append to", path)
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise InputError(
                        f"--record: cannot create its folder ({exc.strerror or exc})", path
                    ) from None


def tools_path_for(record: str | Path) -> Path:
    """Where the registry of a recorded trace goes: ``traces.jsonl`` → ``traces.tools.json``."""
    path = Path(record)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(f"{stem}.tools.json")


def read_only_file(path: str | Path) -> dict[str, bool]:
    """An allow-list of read-only tools: one name a line (``#`` comments); ``!name`` marks a tool
    never to pre-run, whatever its annotation."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the read-only file: {exc}".splitlines()[0], path) from None
    marks: dict[str, bool] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        deny = line.startswith("!")
        name = line[1:].strip() if deny else line
        if not name or any(c.isspace() for c in name):
            raise InputError(f"expected one tool name (or !name) per line, got {raw.strip()!r}", path, number)
        marks[name] = not deny
    return marks


def is_url(target: str) -> bool:
    return target.strip().lower().startswith(("http://", "https://"))


def tool_is_read_only(tool: types.Tool, marks: Mapping[str, bool]) -> bool:
    """An explicit mark wins; else the ``readOnlyHint`` annotation; else never pre-run."""
    if tool.name in marks:
        return bool(marks[tool.name])
    return bool(tool.annotations is not None and tool.annotations.read_only_hint is True)


def registry_of_tools(tools: Sequence[types.Tool], marks: Mapping[str, bool], name: str = "mcp") -> Registry:
    """The upstream's tools as a specdecode registry (read-only marks as above)."""
    specs = []
    for tool in tools:
        schema = dict(tool.input_schema or {})
        if _schema_problem(schema) is not None:
            schema = dict(_OPEN_SCHEMA)
        specs.append(
            ToolSpec(
                name=tool.name,
                description=(tool.description or tool.title or tool.name).strip() or tool.name,
                parameters=schema,
                read_only=tool_is_read_only(tool, marks),
                family="mcp",
            )
        )
    unique = {s.name: s for s in specs}  # a server listing a name twice: the last one
    return Registry(name=name, tools=tuple(unique.values()))


def observation_text(result: types.CallToolResult) -> str:
    """What the agent sees of a result, as a trace observation: its text blocks (other blocks
    as ``[type]``), else its structured content as JSON."""
    parts = []
    for block in result.content or []:
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else f"[{getattr(block, 'type', 'content')}]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)


def _call_key(name: str, arguments: Mapping[str, Any]) -> str:
    return json.dumps([name, arguments], sort_keys=True, ensure_ascii=False, default=str)


def identical(a: ToolCall, b: ToolCall) -> bool:
    """The same request on the wire: tool name and arguments equal as JSON, types included
    (``true`` is not ``1``, ``1`` is not ``1.0``), stricter than Python's ``==``."""
    return _call_key(a.tool_name, a.arguments) == _call_key(b.tool_name, b.arguments)


_RESERVED_META = "io.modelcontextprotocol/"  # the protocol's own envelope keys: per hop, never forwarded
_HOP_META = ("progressToken", "progress_token", QUESTION_META_KEY)


def _forwardable_meta(meta: Any) -> dict[str, Any]:
    """A request's ``_meta`` as the upstream may see it: without the protocol's envelope keys
    (they describe the client's hop to the proxy), the progress token (the proxy relays progress
    itself) and the proxy's own question key."""
    return {
        k: v for k, v in _meta_dict(meta).items() if not k.startswith(_RESERVED_META) and k not in _HOP_META
    }


def _forwardable(params: Any) -> Any:
    """Request params as the upstream may see them (see :func:`_forwardable_meta`)."""
    if params is None or not getattr(params, "meta", None):
        return params
    return params.model_copy(update={"meta": _forwardable_meta(params.meta) or None})


def _meta_dict(meta: Any) -> dict[str, Any]:
    if meta is None:
        return {}
    if isinstance(meta, Mapping):
        return dict(meta)
    dump = getattr(meta, "model_dump", None)
    return dict(dump(by_alias=True)) if dump else {}


# ---------------------------------------------------------------------- limits
class Limits:
    """Caps shared by every session's executor (its ``admit`` hook): speculative calls running
    at once in all and per tool, and a token bucket of speculative calls per second."""

    def __init__(
        self, total: int, per_tool: int, tool_limits: Mapping[str, int] | None = None, rate: float = 0
    ):
        self.total, self.per_tool = max(1, total), max(0, per_tool)
        self.tool_limits = dict(tool_limits or {})
        self.rate = max(0.0, rate)
        self.burst = max(1.0, self.rate)
        self._tokens, self._stamp = self.burst, time.monotonic()
        self._lock = threading.Lock()
        self.running = 0
        self.running_per_tool: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # why: total, tool, rate

    def cap(self, tool: str) -> int:
        return int(self.tool_limits.get(tool, self.per_tool))

    def admit(self, call: ToolCall) -> Callable[[], None] | None:
        tool = call.tool_name
        with self._lock:
            if self.rate:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
            why = None
            if self.running >= self.total:
                why = "total"
            elif self.running_per_tool[tool] >= self.cap(tool):
                why = "tool"
            elif self.rate and self._tokens < 1:
                why = "rate"
            if why is not None:
                self.refused[why] += 1
                return None
            if self.rate:
                self._tokens -= 1
            self.running += 1
            self.running_per_tool[tool] += 1
        done = threading.Event()

        def release() -> None:
            with self._lock:
                if done.is_set():
                    return
                done.set()
                self.running -= 1
                self.running_per_tool[tool] -= 1

        return release


class _Serialised(Predictor):
    """One predictor shared by every session's executor, one prediction at a time."""

    def __init__(self, inner: Predictor):
        self.inner, self.name = inner, getattr(inner, "name", "predictor")
        self._lock = threading.Lock()

    def predict(self, context: StepContext, k: int = 1) -> list[ToolCall]:
        return self.predict_many([context], k)[0].calls

    def predict_many(self, contexts: Sequence[StepContext], k: int = 1) -> list[Prediction]:
        with self._lock:
            return self.inner.predict_many(contexts, k)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


# ---------------------------------------------------------------------- upstream
class UpstreamStartError(Exception):
    """The upstream could not be started or did not complete its handshake."""


class Upstream:
    """One client connection to the real MCP server, kept in its own task (the SDK's transports
    and sessions must be entered and left in one task)."""

    def __init__(self, target: str, errlog: Any = None):
        self.target = target.strip()
        self.errlog = errlog if errlog is not None else sys.stderr
        self.session: ClientSession | None = None
        self.initialize_result: types.InitializeResult | None = None
        self.dead: BaseException | None = None
        self._closing: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Connect and complete the handshake; raises the failure (``MCPError`` when the server
        went away during the handshake, else :class:`UpstreamStartError`)."""
        loop = asyncio.get_running_loop()
        started: asyncio.Future = loop.create_future()
        self._closing = asyncio.Event()
        self._task = loop.create_task(self._run(started), name=f"upstream {self.target[:40]}")
        await started

    async def _run(self, started: asyncio.Future) -> None:
        try:
            async with AsyncExitStack() as stack:
                if is_url(self.target):
                    streams = await stack.enter_async_context(streamable_http_client(self.target))
                else:
                    argv = shlex.split(self.target)
                    # the whole environment: the client already chose what the proxy (and so the
                    # server it stands for) gets; the SDK alone would keep only a few variables
                    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
                    streams = await stack.enter_async_context(stdio_client(params, errlog=self.errlog))
                read, write = streams[0], streams[1]
                session = await stack.enter_async_context(ClientSession(read, write))
                self.initialize_result = await session.initialize()
                self.session = session
                started.set_result(None)
                assert self._closing is not None
                await self._closing.wait()
        except asyncio.CancelledError:
            if not started.done():
                started.set_exception(UpstreamStartError("cancelled"))
            raise
        except BaseException as exc:  # reported to whoever waits for it
            self.dead = exc
            if not started.done():
                started.set_exception(_start_error(exc))
        finally:
            self.session = None

    async def aclose(self, timeout: float = 5.0) -> None:
        if self._closing is not None:
            self._closing.set()
        task = self._task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except (asyncio.TimeoutError, Exception):
                task.cancel()

    def _live(self) -> ClientSession:
        if self.session is None:
            raise MCPError(code=types.CONNECTION_CLOSED, message="Connection closed")
        return self.session

    async def request(self, request: Any, result_type: Any, progress: Any = None) -> Any:
        """Forward one request; the upstream's errors come back as they are."""
        try:
            return await self._live().send_request(request, result_type, progress_callback=progress)
        except MCPError as exc:
            if exc.error.code == types.CONNECTION_CLOSED:
                self.dead = exc
            raise
        except ValidationError as exc:  # the upstream answered something that is not MCP
            raise MCPError(
                code=types.INTERNAL_ERROR,
                message=f"Invalid response from the MCP server: {_first_problem(exc)}",
            ) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            raise MCPError(code=types.CONNECTION_CLOSED, message="Connection closed") from None

    async def list_tools(self, params: types.PaginatedRequestParams | None = None) -> types.ListToolsResult:
        return await self.request(types.ListToolsRequest(params=params), types.ListToolsResult)

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        meta: Mapping[str, Any] | None = None,
        progress=None,
    ) -> types.CallToolResult:
        params = types.CallToolRequestParams(name=name, arguments=dict(arguments or {}))
        if meta:
            params = types.CallToolRequestParams.model_validate(
                {"name": name, "arguments": dict(arguments or {}), "_meta": dict(meta)}, by_name=False
            )
        return await self.request(types.CallToolRequest(params=params), types.CallToolResult, progress)


def _first_problem(exc: ValidationError) -> str:
    """``CallToolResult.content: Input should be a valid list`` (and how many more)."""
    errors = exc.errors()
    if not errors:
        return str(exc).splitlines()[0]
    where = ".".join(str(part) for part in (exc.title, *errors[0].get("loc", ())))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {errors[0].get('msg', 'invalid')}{more}"


def _start_error(exc: BaseException) -> BaseException:
    """What a failed start raises: the SDK's own error when the server went away during the
    handshake (what a client would have seen without the proxy), else a one-line description."""
    found = _find(exc, MCPError)
    if found is not None:
        return found
    inner = _find(exc, OSError) or exc
    return UpstreamStartError(f"{type(inner).__name__}: {inner}".splitlines()[0])


def _find(exc: BaseException, kind: type) -> Any:
    if isinstance(exc, kind):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        found = _find(inner, kind)
        if found is not None:
            return found
    return None


def _connection_closed() -> MCPError:
    return MCPError(code=types.CONNECTION_CLOSED, message="Connection closed")


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


# ---------------------------------------------------------------------- the proxy
class MCPProxy:
    """The MCP server the client talks to (see the module docstring)."""

    def __init__(self, config: ProxyConfig, name: str = "specdecode-mcp-proxy"):
        self.config = config
        self.predictor = _Serialised(config.predictor) if config.predictor is not None else None
        self.limits = Limits(config.max_concurrency, config.tool_concurrency, config.tool_limits, config.rate)
        self.recorder = Recorder(config.record, config.record_tools) if config.record else None
        self.sessions: dict[str, ProxySession] = {}
        self.closed_stats: list[dict[str, Any]] = []
        self._single: ProxySession | None = None  # stdio: the one session
        self._fallback: ProxySession | None = None  # HTTP requests without a session
        self._fallback_lock: asyncio.Lock | None = None
        self._stop: anyio.CancelScope | None = None
        self.server = self._build_server(name)

    # ------------------------------------------------------------------ server
    def _build_server(self, name: str) -> Server:
        server: Server = Server(
            name,
            version="1",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_read_resource=self._read_resource,
            on_list_resource_templates=self._forward(
                types.ListResourceTemplatesRequest, types.ListResourceTemplatesResult
            ),
            on_subscribe_resource=self._forward(types.SubscribeRequest, types.EmptyResult),
            on_unsubscribe_resource=self._forward(types.UnsubscribeRequest, types.EmptyResult),
            on_list_prompts=self._forward(types.ListPromptsRequest, types.ListPromptsResult),
            on_get_prompt=self._forward(types.GetPromptRequest, types.GetPromptResult),
            on_completion=self._forward(types.CompleteRequest, types.CompleteResult),
        )
        server.add_request_handler(
            "logging/setLevel",
            types.SetLevelRequestParams,
            self._forward(types.SetLevelRequest, types.EmptyResult),
        )
        server.middleware.insert(0, self._on_initialize)
        return server

    async def _on_initialize(self, ctx: Any, call_next: Callable[[Any], Any]) -> Any:
        """Per connection (HTTP): start its upstream before answering ``initialize`` — a failure
        is the client's initialize error, as without the proxy — and answer with the upstream's
        identity and capabilities."""
        if ctx.method != "initialize":
            return await call_next(ctx)
        session = self._single
        if session is None:
            connection = getattr(ctx.session, "_connection", None)  # the SDK's per-connection object
            if (
                not isinstance(getattr(connection, "state", None), dict)
                or getattr(connection, "exit_stack", None) is None
            ):
                return await call_next(ctx)  # no per-connection state: served stateless, never shared
            upstream = Upstream(self.config.upstream, self.config.upstream_errlog)
            try:
                await upstream.start()
            except MCPError as exc:  # it went away during the handshake: the client gets the same
                logger.warning("upstream failed to start: %s", exc.error.message)
                raise
            except UpstreamStartError as exc:
                logger.warning("upstream failed to start: %s", exc)
                raise _connection_closed() from None
            session = ProxySession(self, upstream, uuid.uuid4().hex[:10])
            self.sessions[session.label] = session
            connection.state[_SESSION_STATE] = session
            connection.exit_stack.push_async_callback(session.aclose)
        result = await call_next(ctx)
        return self._mirror(result, session.upstream.initialize_result)

    @staticmethod
    def _mirror(result: Any, upstream: types.InitializeResult | None) -> Any:
        if upstream is None or not isinstance(result, dict):
            return result
        wire = upstream.model_dump(by_alias=True, mode="json", exclude_none=True)
        capabilities = {
            key: value
            for key, value in (wire.get("capabilities") or {}).items()
            if key in ("tools", "prompts", "resources", "completions", "logging")
        }
        for key in ("tools", "prompts", "resources"):
            if isinstance(capabilities.get(key), dict):
                capabilities[key] = {**capabilities[key], "listChanged": False}
        resources = capabilities.get("resources")
        capabilities["resources"] = {"subscribe": False, **(resources or {}), "listChanged": False}
        out = dict(result)
        out["capabilities"] = capabilities
        if wire.get("serverInfo"):
            out["serverInfo"] = wire["serverInfo"]
        if wire.get("instructions"):
            out["instructions"] = wire["instructions"]
        else:
            out.pop("instructions", None)
        return out

    async def _session(self, ctx: Any) -> ProxySession:
        if self._single is not None:
            return self._single
        connection = getattr(ctx.session, "_connection", None)
        state = getattr(connection, "state", None)
        if isinstance(state, dict) and isinstance(state.get(_SESSION_STATE), ProxySession):
            return state[_SESSION_STATE]
        return await self._stateless()

    async def _stateless(self) -> ProxySession:
        """Requests without a session (stateless HTTP): one shared upstream, forwarded only —
        nothing speculated or recorded, since calls cannot be told apart by client."""
        if self._fallback_lock is None:
            self._fallback_lock = asyncio.Lock()
        async with self._fallback_lock:
            if self._fallback is None or self._fallback.upstream.dead is not None:
                upstream = Upstream(self.config.upstream, self.config.upstream_errlog)
                try:
                    await upstream.start()
                except UpstreamStartError:
                    raise _connection_closed() from None
                self._fallback = ProxySession(self, upstream, "stateless", speculate=False)
            return self._fallback

    async def _list_tools(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return await (await self._session(ctx)).list_tools(params)

    async def _call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        session = await self._session(ctx)
        if session.label == "stateless":
            return await session.upstream.call_tool(
                params.name, params.arguments, _forwardable_meta(params.meta)
            )
        return await session.call_tool(params, ctx)

    def _forward(self, request_type: Any, result_type: Any) -> Callable[..., Any]:
        async def forward(ctx: Any, params: Any) -> Any:
            session = await self._session(ctx)
            return await session.upstream.request(request_type(params=_forwardable(params)), result_type)

        return forward

    async def _list_resources(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        session = await self._session(ctx)
        ours = types.Resource(
            uri=STATS_URI,
            name="specdecode-stats",
            description="Speculation counters of this session (hits, wasted calls, time saved).",
            mime_type="application/json",
        )
        capabilities = (
            session.upstream.initialize_result.capabilities if session.upstream.initialize_result else None
        )
        if capabilities is None or capabilities.resources is None:
            return types.ListResourcesResult(resources=[ours])
        result = await session.upstream.request(
            types.ListResourcesRequest(params=_forwardable(params)), types.ListResourcesResult
        )
        if params is None or params.cursor is None:
            result.resources = [ours, *result.resources]
        return result

    async def _read_resource(
        self, ctx: Any, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        session = await self._session(ctx)
        if str(params.uri) == STATS_URI:
            text = json.dumps({**session.stats(), "proxy": self.totals()}, indent=2)
            contents = [types.TextResourceContents(uri=STATS_URI, mime_type="application/json", text=text)]
            return types.ReadResourceResult(contents=contents)
        return await session.upstream.request(
            types.ReadResourceRequest(params=_forwardable(params)), types.ReadResourceResult
        )

    # ------------------------------------------------------------------ bookkeeping
    def totals(self) -> dict[str, Any]:
        """Counters over every session of this proxy (open and closed)."""
        rows = [*self.closed_stats, *(s.stats() for s in self.sessions.values())]
        keys = ("calls", "hits", "misses", "launched", "wasted_calls", "cancelled", "time_saved_seconds")
        out: dict[str, Any] = {"sessions": len(rows)}
        for key in keys:
            out[key] = round(sum(r.get(key, 0) for r in rows), 6)
        out["limited"] = dict(self.limits.refused)
        return out

    def session_closed(self, session: ProxySession, stats: dict[str, Any]) -> None:
        self.sessions.pop(session.label, None)
        self.closed_stats.append(stats)
        logger.info(
            "session %s: %d calls in %d turns, %d served from speculation; speculative calls: %d launched, "
            "%d hits, %d wasted (%d cancelled); %.3f s saved",
            stats["session"],
            stats["calls"],
            stats["turns"],
            stats["served_from_speculation"],
            stats["launched"],
            stats["hits"],
            stats["wasted_calls"],
            stats["cancelled"],
            stats["time_saved_seconds"],
        )

    def upstream_died(self, session: ProxySession) -> None:
        """Over stdio the proxy is the server: once its upstream is gone it goes too, so the
        client sees the connection close as it would have without the proxy."""
        if session is self._single and self._stop is not None:
            stop = self._stop
            asyncio.get_running_loop().call_later(0.2, stop.cancel)

    # ------------------------------------------------------------------ transports
    async def serve_stdio(self) -> None:
        """Serve one client over stdin/stdout (the upstream starts first: a failure raises)."""
        upstream = Upstream(self.config.upstream, self.config.upstream_errlog)
        await upstream.start()
        session = ProxySession(self, upstream, uuid.uuid4().hex[:10])
        self.sessions[session.label] = session
        self._single = session
        try:
            with anyio.CancelScope() as scope:
                self._stop = scope
                async with stdio_server() as (read, write):
                    await self.server.run(read, write, self.server.create_initialization_options())
        finally:
            with anyio.CancelScope(shield=True):
                await session.aclose()

    def http_app(self, host: str = "127.0.0.1", path: str = "/mcp", session_idle_timeout: float = 1800):
        """The Starlette app serving streamable HTTP at ``path`` (one proxy session per MCP session)."""
        return self.server.streamable_http_app(
            streamable_http_path=path, host=host, session_idle_timeout=session_idle_timeout
        )

    async def serve_http(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        path: str = "/mcp",
        ready: Callable[[str], None] | None = None,
    ) -> None:
        """Serve streamable HTTP until interrupted; ``ready(url)`` once listening."""
        import socket

        import uvicorn

        app = self.http_app(host, path)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise InputError(f"--port {port}: cannot listen on {host}: {exc.strerror or exc}") from None
        bound = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        url = f"http://{host if ':' not in host else f'[{host}]'}:{bound}{path}"

        async def announce() -> None:
            while not server.started:
                await asyncio.sleep(0.02)
            if ready is not None:
                ready(url)

        task = asyncio.get_running_loop().create_task(announce())
        try:
            await server.serve(sockets=[sock])
        finally:
            task.cancel()
            for session in list(self.sessions.values()):
                with anyio.CancelScope(shield=True):
                    await session.aclose()
            if self._fallback is not None:
                await self._fallback.upstream.aclose()


__all__ = [
    "QUESTION_META_KEY",
    "STATS_URI",
    "Limits",
    "MCPProxy",
    "ProxyConfig",
    "ProxySession",
    "Upstream",
    "UpstreamStartError",
    "identical",
    "observation_text",
    "read_only_file",
    "registry_of_tools",
    "tools_path_for",
]
