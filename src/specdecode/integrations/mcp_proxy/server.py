"""The proxy itself: the MCP server the client talks to, serving stdio or streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from specdecode.errors import InputError
from specdecode.integrations.mcp_proxy.config import (
    _SESSION_STATE,
    STATS_URI,
    Limits,
    ProxyConfig,
    _forwardable,
    _forwardable_meta,
    _Serialised,
)
from specdecode.integrations.mcp_proxy.session import ProxySession, Recorder
from specdecode.integrations.mcp_proxy.upstream import Upstream, UpstreamStartError, _connection_closed

logger = logging.getLogger("specdecode.mcp")


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
