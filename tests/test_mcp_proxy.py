"""The speculative MCP proxy (``specdecode mcp proxy``) with real MCP servers and clients of the
official SDK, over stdio and streamable HTTP: nothing of ours is mocked.

One scripted agent session (three questions; each: search, fetch the first result, fetch the
second, save a note; the agent "thinks" ``THINK`` seconds before every call, the server's
read-only tools sleep ``SLEEP``) runs against the server directly, through the proxy in
record-only mode, and through the proxy speculating with a ``pattern`` table fitted on that
recording. Results must be identical, the write tool never pre-run, and the wall-clock saving
within 20 % of what ``speculate replay`` predicts for the recorded session.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("mcp_types")  # the MCP SDK 2.x (specdecode[mcp])

import anyio
from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import run_cli
from specdecode.integrations.mcp_proxy import (
    QUESTION_META_KEY,
    STATS_URI,
    Limits,
    identical,
    observation_text,
    read_only_file,
    registry_of_tools,
    tools_path_for,
)
from specdecode.jsonl import read_records
from specdecode.records import ToolCall, TraceRecord
from specdecode.registry import load_registry

SERVER = Path(__file__).resolve().parent / "mcp_server.py"
PY = sys.executable
THINK, SLEEP = 0.2, 0.2
TOPICS = ["solar panels", "tide pools", "glass making"]
CALLS_PER_TOPIC = {"search": 1, "fetch": 2, "save_note": 1}


# ---------------------------------------------------------------------- helpers
def server_cmd(*args: Any) -> str:
    return shlex.join([PY, str(SERVER), "--sleep", str(SLEEP), *map(str, args)])


def proxy_argv(upstream: str, *args: Any) -> list[str]:
    return [PY, "-m", "specdecode", "mcp", "proxy", "--upstream", upstream, *map(str, args)]


def child_env() -> dict[str, str]:
    """What a stdio child needs beyond the SDK's default environment (it keeps only a few)."""
    return {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "VIRTUAL_ENV", "HOME", "PATH")}


def params(argv: list[str]) -> StdioServerParameters:
    return StdioServerParameters(command=argv[0], args=argv[1:], env=child_env())


def mcp_error(exc: BaseException) -> MCPError | None:
    """The SDK's error inside whatever its task groups wrapped it in."""
    if isinstance(exc, MCPError):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        found = mcp_error(inner)
        if found is not None:
            return found
    return None


def error_of(exc: BaseException) -> tuple[int, str]:
    found = mcp_error(exc)
    assert found is not None, repr(exc)
    return found.error.code, found.error.message


def dump(result: Any) -> dict[str, Any]:
    return result.model_dump(mode="json", exclude_none=True)


async def scripted(session: ClientSession, on_result=None) -> tuple[float, Any, list[Any]]:
    """The agent: list tools, then per question search → fetch → fetch → save a note, thinking
    ``THINK`` seconds before each call. Returns the wall time, the tool list and the results."""
    started = time.perf_counter()
    tools = await session.list_tools()
    results: list[Any] = []
    for topic in TOPICS:
        meta = {QUESTION_META_KEY: f"Find and save notes about {topic}"}

        async def call(name: str, **arguments: Any) -> Any:
            await anyio.sleep(THINK)
            result = await session.call_tool(name, arguments, meta=meta)  # noqa: B023
            results.append(result)
            if on_result is not None:
                await on_result(name, arguments)
            return result

        found = json.loads((await call("search", query=topic)).content[0].text)
        urls = [r["url"] for r in found["results"]]
        await call("fetch", url=urls[0])
        await call("fetch", url=urls[1])
        await call("save_note", text=f"notes on {topic}")
    return time.perf_counter() - started, tools, results


async def read_stats(session: ClientSession) -> dict[str, Any]:
    result = await session.read_resource(STATS_URI)
    return json.loads(result.contents[0].text)


async def crash_then_call(session: ClientSession) -> list[tuple[int, str]]:
    """The server dies during a call; then one more call. The errors the client gets."""
    errors = []
    for name, arguments in (("crash", {}), ("search", {"query": "after the crash"})):
        try:
            await session.call_tool(name, arguments)
        except Exception as exc:
            errors.append(error_of(exc))
        else:
            errors.append((0, "no error"))
    return errors


def stdio_run(argv: list[str], body, limit: float = 60) -> Any:
    """Open a client on the stdio server ``argv``, initialize, and return ``body(session)``."""

    async def main() -> Any:
        with anyio.fail_after(limit):
            async with stdio_client(params(argv)) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                return await body(session)

    return anyio.run(main)


def server_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ---------------------------------------------------------------------- sessions (module fixtures)
@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp-proxy")


@pytest.fixture(scope="module")
def direct(work: Path) -> SimpleNamespace:
    """The scripted session against the server itself, then a crash."""

    async def body(session: ClientSession) -> Any:
        wall, tools, results = await scripted(session)
        return wall, tools, results, await crash_then_call(session)

    wall, tools, results, crash = stdio_run([PY, str(SERVER), "--sleep", str(SLEEP)], body)
    return SimpleNamespace(wall=wall, tools=tools, results=results, crash=crash)


@pytest.fixture(scope="module")
def recorded(work: Path) -> SimpleNamespace:
    """The scripted session through the proxy in record-only mode."""
    trace, log = work / "recorded.jsonl", work / "recorded-server.log"

    async def body(session: ClientSession) -> Any:
        return *await scripted(session), await read_stats(session)

    wall, tools, results, stats = stdio_run(proxy_argv(server_cmd("--log", log), "--record", trace), body)
    return SimpleNamespace(wall=wall, tools=tools, results=results, stats=stats, trace=trace, log=log)


@pytest.fixture(scope="module")
def replayed(work: Path, recorded: SimpleNamespace) -> SimpleNamespace:
    """A pattern table fitted on the recording (as ``speculate fit`` does), then ``speculate replay``."""
    from specdecode.speculate.run import fit

    fitted, out = work / "fitted", work / "replay"
    fit(recorded.trace, fitted, ["pattern"])
    proc = run_cli(
        "speculate", "replay", "--traces", recorded.trace, "--registry", tools_path_for(recorded.trace),
        "--fitted", fitted, "--predictor", "pattern", "--matcher", "exact", "--k", "1", "--out", out,
        check=True,
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    return SimpleNamespace(fitted=fitted, summary=summary, stderr=proc.stderr)


@pytest.fixture(scope="module")
def speculative(work: Path, replayed: SimpleNamespace) -> SimpleNamespace:
    """The scripted session through the proxy speculating with the fitted table, then a crash."""
    trace, log = work / "speculative.jsonl", work / "speculative-server.log"
    argv = proxy_argv(
        server_cmd("--log", log), "--predictor", "pattern", "--fitted", replayed.fitted, "--record", trace
    )

    async def body(session: ClientSession) -> Any:
        wall, tools, results = await scripted(session)
        await anyio.sleep(0.3)  # the last round's speculative calls end (or are cancelled)
        stats = await read_stats(session)
        return wall, tools, results, stats, await crash_then_call(session)

    wall, tools, results, stats, crash = stdio_run(argv, body)
    return SimpleNamespace(
        wall=wall, tools=tools, results=results, stats=stats, crash=crash, log=log, trace=trace
    )


# ---------------------------------------------------------------------- stdio
def test_results_identical_to_the_server_itself(direct, recorded, speculative) -> None:
    assert dump(recorded.tools) == dump(direct.tools) == dump(speculative.tools)
    assert [dump(r) for r in recorded.results] == [dump(r) for r in direct.results]
    assert [dump(r) for r in speculative.results] == [dump(r) for r in direct.results]
    assert speculative.stats["served_from_speculation"] >= 4  # some results did come from speculation


def test_write_tool_is_never_called_speculatively(speculative) -> None:
    calls = Counter(entry["tool"] for entry in server_log(speculative.log))
    assert calls["save_note"] == len(TOPICS) * CALLS_PER_TOPIC["save_note"]  # only the agent's own
    assert speculative.stats["refused"] >= 1  # the table did propose it: refused, not run
    stats = speculative.stats
    assert stats["launched"] >= 6 and stats["hits"] >= 4
    assert stats["hits"] + stats["misses"] == len(TOPICS) * 3  # every read-only call the agent made
    # each ran upstream once: the hits as speculative calls, the misses for real (a hit never twice)
    assert len(TOPICS) * 3 <= calls["fetch"] + calls["search"] <= stats["launched"] + stats["misses"]


def test_saving_within_20_percent_of_replay(recorded, replayed, speculative) -> None:
    simulation = replayed.summary["pattern"]["simulation"]
    predicted = simulation["time_saved_seconds"]
    measured = recorded.wall - speculative.wall
    print(
        f"record-only {recorded.wall:.3f} s, speculating {speculative.wall:.3f} s: saved {measured:.3f} s; "
        f"replay predicts {predicted:.3f} s ({simulation['hits_used']} hits); "
        f"the executor counted {speculative.stats['time_saved_seconds']:.3f} s"
    )
    assert simulation["hits_used"] >= 4 and predicted > 4 * SLEEP * 0.8
    assert abs(measured - predicted) <= 0.2 * predicted, (measured, predicted)


def test_the_recorded_trace_replays_and_trains(recorded, replayed, speculative) -> None:
    records = read_records(recorded.trace, TraceRecord)
    assert [r.question for r in records] == [f"Find and save notes about {t}" for t in TOPICS]
    steps = [s for r in records for s in r.trace]
    assert [s.action.tool_name for s in steps] == ["search", "fetch", "fetch", "save_note"] * len(TOPICS)
    for k, step in enumerate(steps):
        extra = step.model_extra or {}
        assert extra["tool_seconds"] >= (SLEEP if step.action.tool_name != "save_note" else 0.05) * 0.9
        # the agent's think time; 0 where a turn began without a moment the proxy saw
        assert extra["actor_seconds"] == 0.0 if k % 4 == 0 else extra["actor_seconds"] >= THINK * 0.9
        assert extra["read_only"] is (step.action.tool_name != "save_note")
    assert steps[0].observation == dump(recorded.results[0])["content"][0]["text"]
    registry = load_registry(tools_path_for(recorded.trace))
    assert {t.name: t.read_only for t in registry.tools} == {
        "search": True, "fetch": True, "save_note": False, "crash": False
    }  # fmt: skip
    assert replayed.summary["steps"] == 12 and replayed.summary["pattern"]["hit_at_1"] >= 0.5
    # train reads traces directly (converted to its form)
    from specdecode.prompts import PromptOptions
    from specdecode.train.data import load_chat_file

    assert len(load_chat_file(recorded.trace, "steps", registry, PromptOptions())) == 12
    # the speculating session's own recording replays too, and says what was served from speculation
    served = Counter(
        s.model_extra["served"] for r in read_records(speculative.trace, TraceRecord) for s in r.trace
    )
    assert served["speculation"] == speculative.stats["served_from_speculation"]


def test_upstream_that_fails_to_start_stdio(work: Path) -> None:
    def initialize(argv: list[str]) -> tuple[int, str]:
        try:
            stdio_run(argv, lambda session: anyio.sleep(0), limit=30)
        except BaseException as exc:
            return error_of(exc)
        raise AssertionError("initialize succeeded")

    direct = initialize([PY, str(SERVER), "--fail"])
    assert direct == initialize(proxy_argv(server_cmd("--fail")))
    assert direct == (-32000, "Connection closed")


def test_upstream_that_dies_mid_session_stdio(direct, speculative) -> None:
    assert speculative.crash == direct.crash == [(-32000, "Connection closed")] * 2


def test_malformed_upstream_messages_stdio() -> None:
    """Junk lines on the server's stdout are skipped and a malformed result fails its call, with
    or without the proxy; the session goes on."""

    async def body(session: ClientSession) -> list[Any]:
        out: list[Any] = [[t.name for t in (await session.list_tools()).tools]]
        for name in ("echo", "bad", "echo"):
            try:
                out.append(dump(await session.call_tool(name, {"text": "hi"})))
            except Exception as exc:
                found = mcp_error(exc)
                out.append(("error", found.error.message if found else str(exc)))
        return out

    broken = [PY, str(SERVER), "--broken"]
    direct = stdio_run(broken, body, limit=30)
    proxied = stdio_run(proxy_argv(shlex.join(broken)), body)
    assert direct[:2] == proxied[:2] and direct[3] == proxied[3]
    assert direct[2][0] == proxied[2][0] == "error"
    assert "content" in direct[2][1] and "valid list" in direct[2][1]  # pydantic's own words
    assert proxied[2][1].startswith("Invalid response from the MCP server") and "content" in proxied[2][1]


# ---------------------------------------------------------------------- HTTP
@pytest.fixture(scope="module")
def http_proxy(work: Path, replayed: SimpleNamespace):
    """The proxy serving streamable HTTP (one upstream process per MCP session)."""
    err, log, marker = work / "http.err", work / "http-server.log", work / "fail-next-start"
    upstream = server_cmd("--log", log, "--fail-start-file", marker)
    argv = proxy_argv(upstream, "--transport", "http", "--port", "0", "--predictor", "pattern",
                      "--fitted", replayed.fitted, "--record", work / "http.jsonl")  # fmt: skip
    with open(err, "w") as stderr:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            url = next((w for w in err.read_text().split() if w.startswith("http://")), None)
            time.sleep(0.1)
        assert url is not None, err.read_text()
        yield SimpleNamespace(url=url, log=log, marker=marker, err=err, proc=proc)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


async def http_client(url: str, body) -> Any:
    async with streamable_http_client(url) as streams, ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        return await body(session)


def test_http_sessions(http_proxy, direct) -> None:
    """Over HTTP, each MCP session has its own upstream and executor.

    Session A runs the scripted session; after A's first fetch (when the proxy pre-runs A's
    second) session B makes that very call: B's own upstream answers it, never A's speculation.
    Then a session whose upstream fails to start, and A's upstream dies mid-call: those sessions
    get the errors a client gets without the proxy, while B and a new session still work."""
    seen: dict[str, Any] = {}
    second = json.loads(direct.results[0].content[0].text)["results"][1]["url"]

    async def main() -> None:
        with anyio.fail_after(90):
            async with streamable_http_client(http_proxy.url) as sb, ClientSession(sb[0], sb[1]) as b:
                await b.initialize()
                await b.list_tools()

                async def on_result(name: str, arguments: dict[str, Any]) -> None:
                    if name == "fetch" and arguments["url"] == second[:-1] + "1":
                        await anyio.sleep(0.05)  # A's speculative fetch of `second` is running
                        seen["b"] = dump(await b.call_tool("fetch", {"url": second}))
                        seen["b_stats"] = await read_stats(b)

                async def session_a(session: ClientSession) -> None:
                    seen["a"] = await scripted(session, on_result)
                    await anyio.sleep(0.3)
                    seen["a_stats"] = await read_stats(session)
                    seen["crash"] = await crash_then_call(session)

                await http_client(http_proxy.url, session_a)
                http_proxy.marker.write_text("fail the next upstream start")
                try:
                    await http_client(http_proxy.url, lambda s: anyio.sleep(0))
                except BaseException as exc:  # the failed initialize
                    seen["failed_start"] = error_of(exc)
                seen["healthy"] = dump(await b.call_tool("search", {"query": TOPICS[0]}))
            seen["new"] = await http_client(http_proxy.url, lambda s: s.call_tool("fetch", {"url": "u/x/1"}))
            async with Client(http_proxy.url) as modern:  # the 2026 protocol: no sessions over HTTP
                seen["modern"] = (
                    modern.session.protocol_version,
                    await modern.call_tool("search", {"query": "m"}),
                )

    anyio.run(main)
    _, tools, results = seen["a"]
    assert dump(tools) == dump(direct.tools)
    assert [dump(r) for r in results] == [dump(r) for r in direct.results]
    assert seen["a_stats"]["hits"] >= 4 and seen["a_stats"]["served_from_speculation"] >= 4
    # isolation: B's identical call was answered by B's upstream; A's speculation ran it too
    assert seen["b"] == dump(direct.results[2])
    assert seen["b_stats"]["served_from_speculation"] == 0 and seen["b_stats"]["hits"] == 0
    log = server_log(http_proxy.log)
    assert len([e for e in log if e["arguments"].get("url") == second]) == 2
    assert Counter(e["tool"] for e in log)["save_note"] == len(TOPICS)  # never pre-run
    # bad upstreams: the errors of test_upstream_that_fails_to_start_stdio and of a direct crash
    assert seen["failed_start"] == (-32000, "Connection closed")
    assert seen["crash"] == direct.crash
    assert seen["healthy"] == dump(direct.results[0])
    assert seen["new"].content[0].text == "page u/x/1: text about x"
    # a client without sessions is served (forwarded, never speculated for: calls cannot be told apart)
    version, modern = seen["modern"]
    assert version not in ("2025-06-18", "2025-11-25") and json.loads(modern.content[0].text)["query"] == "m"
    assert http_proxy.proc.poll() is None  # still serving
    # each session ends with a log line; its turns are in the record
    http_proxy.proc.send_signal(signal.SIGINT)
    http_proxy.proc.wait(20)
    err = http_proxy.err.read_text()
    lines = [line for line in err.splitlines() if " session " in line]
    assert len(lines) == 3  # B, A and the new one (the failed start has none, the sessionless client none)
    assert any("6 served from speculation" in line and "s saved" in line for line in lines), lines
    assert "upstream failed to start" in err
    records = read_records(http_proxy.err.parent / "http.jsonl", TraceRecord)
    assert sum(len(r.trace) for r in records) >= 12


# ---------------------------------------------------------------------- pieces
def test_read_only_marks(tmp_path: Path) -> None:
    import mcp_types as types

    listed = tmp_path / "read-only.txt"
    listed.write_text("# tools that may be pre-run\nlookup\n!search   # annotated read-only, but not here\n")
    marks = read_only_file(listed)
    assert marks == {"lookup": True, "search": False}
    hint = types.ToolAnnotations(read_only_hint=True)
    tools = [
        types.Tool(name="search", input_schema={"type": "object"}, annotations=hint),  # list says no
        types.Tool(name="fetch", input_schema={"type": "object"}, annotations=hint),  # the hint says yes
        types.Tool(name="lookup", input_schema={"type": "object"}),  # the list says yes
        types.Tool(name="idempotent", input_schema={"type": "object"},
                   annotations=types.ToolAnnotations(idempotent_hint=True)),  # neither: never
        types.Tool(name="broken", input_schema={"type": "array"}),  # unusable schema: kept, opened up
    ]  # fmt: skip
    registry = registry_of_tools(tools, marks)
    assert {t.name: t.read_only for t in registry.tools} == {
        "search": False, "fetch": True, "lookup": True, "idempotent": False, "broken": False
    }  # fmt: skip
    assert registry.get("broken").parameters["type"] == "object"
    bad = tmp_path / "bad.txt"
    bad.write_text("two names\n")
    with pytest.raises(Exception, match=r"bad\.txt:1: expected one tool name"):
        read_only_file(bad)


def test_limits_caps_and_rate() -> None:
    limits = Limits(total=3, per_tool=2, tool_limits={"slow": 1}, rate=0)
    a, b = limits.admit(ToolCall(tool_name="t")), limits.admit(ToolCall(tool_name="t"))
    assert a and b and limits.admit(ToolCall(tool_name="t")) is None  # per tool
    s = limits.admit(ToolCall(tool_name="slow"))
    assert s and limits.admit(ToolCall(tool_name="other")) is None  # in all
    a(), a()  # released once, however often it is called
    assert limits.admit(ToolCall(tool_name="slow")) is None and limits.admit(ToolCall(tool_name="u"))
    assert limits.refused == Counter({"tool": 2, "total": 1})
    rated = Limits(total=100, per_tool=100, rate=2.0)  # 2 a second, bursts of 2
    admitted = [rated.admit(ToolCall(tool_name="t")) for _ in range(5)]
    assert sum(x is not None for x in admitted) == 2 and rated.refused["rate"] == 3
    time.sleep(0.6)
    assert rated.admit(ToolCall(tool_name="t")) is not None


def test_observation_text_and_paths() -> None:
    import mcp_types as types

    image = types.ImageContent(type="image", data="AA==", mime_type="image/png")
    text = types.CallToolResult(content=[types.TextContent(type="text", text="a"), image])
    assert observation_text(text) == "a\n[image]"
    structured = types.CallToolResult(content=[], structured_content={"x": 1})
    assert observation_text(structured) == '{"x": 1}'
    assert tools_path_for("runs/traces.jsonl") == Path("runs/traces.tools.json")
    assert tools_path_for("t") == Path("t.tools.json")


def test_identical_means_the_same_request() -> None:
    a = ToolCall(tool_name="t", arguments={"n": 1, "flag": True})
    assert identical(a, ToolCall(tool_name="t", arguments={"flag": True, "n": 1}))
    assert not identical(a, ToolCall(tool_name="t", arguments={"n": 1.0, "flag": True}))  # 1 == 1.0
    assert not identical(a, ToolCall(tool_name="t", arguments={"n": 1, "flag": 1}))  # True == 1
    assert not identical(a, ToolCall(tool_name="u", arguments={"n": 1, "flag": True}))


def test_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from specdecode.cli import app
    from specdecode.errors import InputError

    cases = [
        (["--upstream", " "], "--upstream"),
        (["--upstream", "x", "--predictor", "pattern"], "need --fitted"),
        (["--upstream", "x", "--fitted", tmp_path], "--fitted needs --predictor"),
        (["--upstream", "x", "--read-only-file", tmp_path / "none.txt"], "cannot read the read-only file"),
        (["--upstream", "x", "--transport", "sse"], "--transport"),
        (["--upstream", "x", "--tool-limit", "fetch"], "--tool-limit: expected NAME=N"),
    ]
    for args, expected in cases:
        result = CliRunner().invoke(app, ["mcp", "proxy", *map(str, args)])
        assert isinstance(result.exception, InputError) and expected in str(result.exception), (args, result)
    proc = run_cli("mcp", "proxy", "--upstream", "x", "--fitted", tmp_path, timeout=60)  # as the user sees it
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: --fitted needs --predictor (without one the proxy only records)"
    ]
