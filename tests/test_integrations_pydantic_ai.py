"""Pydantic AI adapter against the real package with its ``FunctionModel``."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.toolsets import FunctionToolset

from specdecode.integrations.pydantic_ai import PydanticAISpeculation, history_from_messages
from specdecode.integrations.testing import ScriptedPredictor, call, registry_of
from specdecode.speculate.executor import SpeculativeExecutor

THINK, TOOL = 0.1, 0.12
CALLS = [
    ("search", {"query": "a"}),
    ("search", {"query": "b"}),
    ("add_note", {"text": "x"}),
    ("search", {"query": "c"}),
    ("search", {"query": "d"}),
]
GUESSES = [
    call("search", query="a"),
    call("search", query="WRONG"),
    call("add_note", text="x"),
    call("search", query="c"),
    call("search", query="d"),
]
runs: Counter = Counter()


def search(query: str) -> str:
    """Search the web."""
    runs[("search", query)] += 1
    time.sleep(TOOL)
    return f"results for {query}"


async def add_note(text: str) -> str:
    """Write a note (a side effect)."""
    runs[("add_note", text)] += 1
    await asyncio.sleep(TOOL)
    return "saved"


async def scripted(messages, info):
    """The actor: the next scripted call after THINK seconds, then the answer."""
    turn = sum(isinstance(m, ModelResponse) for m in messages)
    await asyncio.sleep(THINK)
    if turn < len(CALLS):
        name, args = CALLS[turn]
        return ModelResponse(
            parts=[TextPart(f"step {turn}"), ToolCallPart(name, args, tool_call_id=f"call-{turn}")]
        )
    return ModelResponse(parts=[TextPart("the answer")])


def agent_for(spec: PydanticAISpeculation | None, mode: str) -> Agent:
    if spec is None:
        return Agent(FunctionModel(scripted), tools=[search, add_note])
    if mode == "capability":
        return Agent(FunctionModel(scripted), tools=[search, add_note], capabilities=[spec.capability()])
    return Agent(FunctionModel(scripted), toolsets=[spec.toolset(FunctionToolset([search, add_note]))])


@pytest.mark.parametrize("mode", ["capability", "toolset"])
def test_pydantic_ai_hits_misses_and_time_saved(mode):
    async def run(spec):
        agent = agent_for(spec, mode)
        started = time.perf_counter()
        result = await agent.run("What is x?")
        return time.perf_counter() - started, result

    asyncio.run(run(None))  # warm up
    runs.clear()
    base, result = asyncio.run(run(None))
    assert result.output == "the answer"
    runs.clear()
    ex = SpeculativeExecutor(ScriptedPredictor(GUESSES), registry_of({"search": True, "add_note": False}), {})
    try:
        wall, result = asyncio.run(run(PydanticAISpeculation(ex, [search, add_note])))
        assert result.output == "the answer"
        returns = [
            (p.tool_call_id, p.content)
            for m in result.all_messages()
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, ToolReturnPart)
        ]
        assert returns == [
            ("call-0", "results for a"), ("call-1", "results for b"), ("call-2", "saved"),
            ("call-3", "results for c"), ("call-4", "results for d"),
        ]  # fmt: skip
        stats = ex.stats
        assert (stats.hits, stats.misses, stats.direct) == (3, 1, 1)
        assert stats.wasted_calls == 1 and stats.refused >= 1
        assert runs == Counter(
            {("search", "a"): 1, ("search", "b"): 1, ("search", "c"): 1, ("search", "d"): 1,
             ("search", "WRONG"): 1, ("add_note", "x"): 1}
        )  # fmt: skip
        contexts = ex.predictor.contexts
        assert contexts[0].question == "What is x?"
        assert [s.observation for s in contexts[3].history] == ["results for a", "results for b", "saved"]
        saved = base - wall
        assert stats.time_saved > 2 * TOOL
        assert abs(saved - stats.time_saved) <= 0.2 * stats.time_saved, (saved, stats.time_saved)
    finally:
        ex.close()


def test_history_from_messages():
    from pydantic_ai.messages import UserPromptPart

    messages = [
        ModelRequest(parts=[UserPromptPart("q?")]),
        ModelResponse(parts=[TextPart("look"), ToolCallPart("search", {"query": "a"}, tool_call_id="1")]),
        ModelRequest(parts=[ToolReturnPart("search", "A", tool_call_id="1")]),
        ModelResponse(parts=[ToolCallPart("search", '{"query": "b"}', tool_call_id="2")]),
    ]
    question, steps = history_from_messages(messages)
    assert question == "q?"
    assert [(s.thought, s.action.arguments, s.observation) for s in steps] == [
        ("look", {"query": "a"}, "A"),
        ("", {"query": "b"}, None),
    ]
