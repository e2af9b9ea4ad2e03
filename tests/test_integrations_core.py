"""The signature-preserving ``speculative_tool`` decorator and the adapter core."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import Counter

import pytest

from specdecode.integrations import speculative_tool
from specdecode.integrations.testing import ScriptedPredictor, call, registry_of
from specdecode.speculate.executor import SpeculativeExecutor

runs: Counter = Counter()


def search(query: str, limit: int = 3) -> str:
    """Search the web.

    Args:
        query: what to look for.
        limit: how many results.
    """
    runs[query] += 1
    time.sleep(0.05)
    return f"{limit} results for {query}"


async def fetch(url: str) -> str:
    """Fetch a page."""
    runs[url] += 1
    await asyncio.sleep(0.05)
    return f"page {url}"


def make_executor(script):
    return SpeculativeExecutor(ScriptedPredictor(script), registry_of({"search": True, "fetch": True}), {})


def test_signature_and_kind_preserved():
    ex = make_executor([])
    try:
        wrapped_search, wrapped_fetch = speculative_tool(ex, search), speculative_tool(ex)(fetch)
        assert inspect.signature(wrapped_search) == inspect.signature(search)
        assert wrapped_search.__wrapped__ is search and wrapped_search.__doc__ == search.__doc__
        assert wrapped_search.__name__ == "search" and not inspect.iscoroutinefunction(wrapped_search)
        assert inspect.iscoroutinefunction(wrapped_fetch) and inspect.signature(
            wrapped_fetch
        ) == inspect.signature(fetch)
        assert ex.tools == {"search": search, "fetch": fetch}  # the executor runs the plain functions
    finally:
        ex.close()


def test_frameworks_derive_the_same_schema():
    ex = make_executor([])
    try:
        pydantic_ai = pytest.importorskip("pydantic_ai")
        plain = pydantic_ai.Tool(search).tool_def.parameters_json_schema
        assert pydantic_ai.Tool(speculative_tool(ex, search)).tool_def.parameters_json_schema == plain
        pytest.importorskip("langchain_core")
        from langchain_core.tools import tool

        assert tool(speculative_tool(ex, search)).args == tool(search).args
    finally:
        ex.close()


def test_decorated_calls_hit_and_miss():
    runs.clear()
    ex = make_executor([call("search", query="a"), call("fetch", url="WRONG"), call("search", query="c")])
    try:
        s, f = speculative_tool(ex, search), speculative_tool(ex, fetch)
        ex.start("q")
        ex.settle(1)
        time.sleep(0.08)  # the actor thinks; the speculative call finishes
        assert s("a") == "3 results for a"  # positional arguments bound to names: a hit
        ex.settle(1)
        assert asyncio.run(f(url="u")) == "page u"  # the wrong guess: a miss
        ex.settle(1)
        time.sleep(0.08)
        assert s(query="c") == "3 results for c"
        stats = ex.stats
        assert (stats.hits, stats.misses, stats.wasted_calls) == (2, 1, 1)
        assert runs == Counter({"a": 1, "u": 1, "WRONG": 1, "c": 1})
    finally:
        ex.close()
