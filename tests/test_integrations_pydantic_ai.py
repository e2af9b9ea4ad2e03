"""Pydantic AI adapter against the real package with its ``FunctionModel``."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("pydantic_ai")

from integration_scenario import (
    ANSWER,
    CALLS,
    QUESTION,
    RUNS,
    THINK,
    TOOL,
    check_speculated_run,
    executor,
    run_add_note,
    run_search,
    saving_agrees,
)
from pydantic_ai import Agent
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.toolsets import FunctionToolset

from specdecode.integrations.pydantic_ai import PydanticAISpeculation, history_from_messages


def search(query: str) -> str:
    """Search the web."""
    time.sleep(TOOL)
    return run_search(query)


async def add_note(text: str) -> str:
    """Write a note (a side effect)."""
    await asyncio.sleep(TOOL)
    return run_add_note(text)


async def scripted(messages, info):
    """The actor: the next scripted call after THINK seconds, then the answer."""
    turn = sum(isinstance(m, ModelResponse) for m in messages)
    await asyncio.sleep(THINK)
    if turn < len(CALLS):
        name, args = CALLS[turn]
        return ModelResponse(
            parts=[TextPart(f"step {turn}"), ToolCallPart(name, args, tool_call_id=f"call-{turn}")]
        )
    return ModelResponse(parts=[TextPart(ANSWER)])


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
        result = await agent.run(QUESTION)
        return time.perf_counter() - started, result

    asyncio.run(run(None))  # warm up

    def play() -> tuple[float, float]:
        RUNS.clear()
        base, result = asyncio.run(run(None))
        assert result.output == ANSWER
        RUNS.clear()
        ex = executor()
        try:
            wall, result = asyncio.run(run(PydanticAISpeculation(ex, [search, add_note])))
            assert result.output == ANSWER
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
            return check_speculated_run(ex, base, wall)
        finally:
            ex.close()

    saving_agrees(play)


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
