"""LangGraph / LangChain adapter against the real packages with a scripted fake chat model."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("langgraph")
pytest.importorskip("langchain")

from integration_scenario import (
    ANSWER,
    CALLS,
    OBSERVATIONS,
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
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from specdecode.integrations.langgraph import LangGraphSpeculation, history_from_messages
from specdecode.speculate.executor import SpeculativeExecutor


@tool
def search(query: str) -> str:
    """Search the web."""
    time.sleep(TOOL)
    return run_search(query)


@tool
def add_note(text: str) -> str:
    """Write a note (a side effect)."""
    time.sleep(TOOL)
    return run_add_note(text)


class ScriptedChat(GenericFakeChatModel):
    """LangChain's fake chat model, taking THINK seconds per answer, tools bound as-is."""

    def bind_tools(self, tools, **kwargs):
        return self

    def _generate(self, *args, **kwargs):
        time.sleep(THINK)
        return super()._generate(*args, **kwargs)

    async def _agenerate(self, *args, **kwargs):
        await asyncio.sleep(THINK)
        return super()._generate(*args, **kwargs)


def scripted_model() -> ScriptedChat:
    replies = [
        AIMessage(content=f"step {i}", tool_calls=[{"name": n, "args": a, "id": f"call-{i}"}])
        for i, (n, a) in enumerate(CALLS)
    ]
    return ScriptedChat(messages=iter([*replies, AIMessage(content=ANSWER)]))


def check_run(messages, ex: SpeculativeExecutor, base: float, wall: float) -> tuple[float, float]:
    tool_messages = [m for m in messages if isinstance(m, ToolMessage)]
    assert [m.tool_call_id for m in tool_messages] == [f"call-{i}" for i in range(len(CALLS))]
    assert [m.content for m in tool_messages] == OBSERVATIONS
    assert messages[-1].content == ANSWER
    return check_speculated_run(ex, base, wall)


def run_agent(spec: LangGraphSpeculation | None) -> tuple[float, list]:
    agent = create_agent(scripted_model(), [search, add_note], middleware=[spec.middleware()] if spec else [])
    started = time.perf_counter()
    out = agent.invoke({"messages": [{"role": "user", "content": QUESTION}]})
    return time.perf_counter() - started, out["messages"]


def test_create_agent_middleware_hits_misses_and_time_saved():
    run_agent(None)  # warm up

    def play() -> tuple[float, float]:
        RUNS.clear()
        base, _plain = run_agent(None)
        assert len(RUNS) == 5
        RUNS.clear()
        ex = executor()
        try:
            wall, messages = run_agent(LangGraphSpeculation(ex, [search, add_note]))
            return check_run(messages, ex, base, wall)
        finally:
            ex.close()

    saving_agrees(play)


def build_graph(spec: LangGraphSpeculation | None):
    model = scripted_model()

    async def call_model(state: MessagesState):
        if spec is not None:
            spec.before_model(state["messages"])
        return {"messages": [await model.ainvoke(state["messages"])]}

    node = (
        ToolNode([search, add_note], wrap_tool_call=spec.wrap_tool_call, awrap_tool_call=spec.awrap_tool_call)
        if spec
        else ToolNode([search, add_note])
    )
    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", node)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "model")
    return graph.compile()


def test_langgraph_tool_node_async():
    async def run(spec):
        graph = build_graph(spec)
        started = time.perf_counter()
        out = await graph.ainvoke({"messages": [HumanMessage(QUESTION)]})
        return time.perf_counter() - started, out["messages"]

    asyncio.run(run(None))  # warm up

    def play() -> tuple[float, float]:
        RUNS.clear()
        base, _ = asyncio.run(run(None))
        RUNS.clear()
        ex = executor()
        try:
            wall, messages = asyncio.run(run(LangGraphSpeculation(ex, [search, add_note])))
            return check_run(messages, ex, base, wall)
        finally:
            ex.close()

    saving_agrees(play)


def test_history_from_messages():
    messages = [
        HumanMessage("q?"),
        AIMessage(content="let me look", tool_calls=[{"name": "search", "args": {"query": "a"}, "id": "1"}]),
        ToolMessage(content="A", tool_call_id="1"),
        AIMessage(content="", tool_calls=[{"name": "search", "args": {"query": "b"}, "id": "2"}]),
    ]
    question, steps = history_from_messages(messages)
    assert question == "q?"
    assert [(s.thought, s.action.arguments, s.observation) for s in steps] == [
        ("let me look", {"query": "a"}, "A"),
        ("", {"query": "b"}, None),
    ]
