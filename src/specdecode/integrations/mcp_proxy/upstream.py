"""The upstream: one client connection to the real MCP server, kept in its own task."""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from specdecode.integrations.mcp_proxy.config import is_url


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
