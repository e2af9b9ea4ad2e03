"""A small MCP server for the proxy tests (the official SDK's ``MCPServer``), run as a script.

Tools: ``search`` and ``fetch`` (read-only: ``readOnlyHint``; they sleep ``--sleep`` seconds),
``save_note`` (a write: no annotation), ``crash`` (the process dies mid-call). Every call is
appended to ``--log FILE`` as a JSON line, so a test can see what really ran.

    python tests/mcp_server.py [--sleep S] [--log FILE] [--fail-start-file F] [--http PORT]
    python tests/mcp_server.py --broken     # not the SDK: a hand-written server that writes
                                            # junk lines and one malformed result

``--fail-start-file F``: when F exists the server deletes it and exits at once (fails to start
once). ``--http PORT`` serves streamable HTTP instead of stdio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

THINK_SAFE_SLEEP = 0.25


def search_result(query: str) -> str:
    slug = "-".join(query.lower().split())
    return json.dumps(
        {
            "query": query,
            "results": [{"url": f"https://example.org/{slug}/{i}", "rank": i} for i in (1, 2, 3)],
        }
    )


def main_sdk(args: argparse.Namespace) -> None:
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    log = Path(args.log) if args.log else None
    notes: list[str] = []

    def logged(tool: str, **arguments: object) -> None:
        if log is not None:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"tool": tool, "arguments": arguments, "t": time.time()}) + "\n")

    server = MCPServer("specdecode-test-server", instructions="Search, fetch and keep notes.")
    read_only = ToolAnnotations(readOnlyHint=True)

    @server.tool(annotations=read_only)
    async def search(query: str) -> str:
        """Search the web; returns JSON with result URLs."""
        logged("search", query=query)
        await asyncio.sleep(args.sleep)
        return search_result(query)

    @server.tool(annotations=read_only)
    async def fetch(url: str) -> str:
        """Fetch a page."""
        logged("fetch", url=url)
        await asyncio.sleep(args.sleep)
        return f"page {url}: text about {url.rsplit('/', 2)[-2]}"

    @server.tool()
    async def save_note(text: str) -> str:
        """Save a note (a side effect: never pre-run)."""
        logged("save_note", text=text)
        await asyncio.sleep(0.05)
        notes.append(text)
        return f"saved note {len(notes)}"

    @server.tool()
    async def crash() -> str:
        """The server process dies during this call."""
        logged("crash")
        await asyncio.sleep(0.05)
        os._exit(1)

    if args.http:
        server.run("streamable-http", port=args.http, host="127.0.0.1")
    else:
        server.run("stdio")


def main_broken() -> None:
    """A hand-written stdio server: junk lines on stdout before every answer; ``bad`` returns a
    result that is not a CallToolResult; ``echo`` (read-only) works."""
    tools = [
        {
            "name": "echo",
            "description": "Echo the text.",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
            "annotations": {"readOnlyHint": True},
        },
        {"name": "bad", "description": "Returns a malformed result.", "inputSchema": {"type": "object"}},
    ]
    out = sys.stdout
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if "id" not in message:
            continue
        method, params = message.get("method"), message.get("params") or {}
        if method == "initialize":
            result = {
                "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "broken", "version": "0"},
            }
        elif method == "tools/list":
            result = {"tools": tools}
        elif method == "tools/call" and params.get("name") == "echo":
            text = (params.get("arguments") or {}).get("text", "")
            result = {"content": [{"type": "text", "text": text}]}
        elif method == "tools/call":
            result = {"content": "this is not a list of content blocks"}
        elif method == "ping":
            result = {}
        else:
            out.write(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": message["id"],
                        "error": {"code": -32601, "message": "Method not found"},
                    }
                )
                + "\n"
            )
            out.flush()
            continue
        out.write("this line is not JSON-RPC\n")
        out.write(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}) + "\n")
        out.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sleep", type=float, default=THINK_SAFE_SLEEP)
    parser.add_argument("--log")
    parser.add_argument("--fail-start-file")
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--broken", action="store_true")
    parser.add_argument("--http", type=int, default=0)
    args = parser.parse_args()
    if args.fail:
        print("test server: failing at start as asked", file=sys.stderr)
        sys.exit(3)
    if args.fail_start_file and Path(args.fail_start_file).exists():
        Path(args.fail_start_file).unlink()
        print("test server: failing at start once as asked", file=sys.stderr)
        sys.exit(3)
    if args.broken:
        main_broken()
    else:
        main_sdk(args)


if __name__ == "__main__":
    main()
