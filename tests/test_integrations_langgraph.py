"""LangGraph / LangChain adapter against the real packages with a scripted fake chat model."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

pytest.importorskip("langgraph")
pytest.importorskip("langchain")

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from specdecode.integrations.langgraph import LangGraphSpeculation, history_from_messages
from specdecode.integrations.testing import ScriptedPredictor, call, registry_of
from specdecode.speculate.executor import SpeculativeExecutor

THINK, TOOL = 0.1, 0.12
# What the actor does: search a, search b, add_note (side effect), search c, search d.
CALLS = [
    ("search", {"query": "a"}),
    ("search", {"query": "b"}),
    ("add_note", {"text": "x"}),
    ("search", {"query": "c"}),
    ("search", {"query": "d"}),
]
# What the speculator guesses: right, wrong, the side-effecting tool (must be refused), right, right.
GUESSES = [
    call("search", query="a"),
    call("search", query="WRONG"),
    call("add_note", text="x"),
    call("search", query="c"),
    call("search", query="d"),
]
runs: Counter = Counter()


@tool
def search(query: str) -> str:
    """Search the web."""
    runs[("search", query)] += 1
    time.sleep(TOOL)
    return f"results for {query}"


@tool
def add_note(text: str) -> str:
    """Write a note (a side effect)."""
    runs[("add_note", text)] += 1
    time.sleep(TOOL)
    return "saved"


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
    return ScriptedChat(messages=iter([*replies, AIMessage(content="the answer")]))


def executor() -> SpeculativeExecutor:
    return SpeculativeExecutor(
        ScriptedPredictor(GUESSES), registry_of({"search": True, "add_note": False}), {}
    )


def check_run(messages, ex: SpeculativeExecutor, base: float, wall: float) -> None:
    tool_messages = [m for m in messages if isinstance(m, ToolMessage)]
    assert [m.tool_call_id for m in tool_messages] == [f"call-{i}" for i in range(len(CALLS))]
    assert [m.content for m in tool_messages] == [
        "results for a", "results for b", "saved", "results for c", "results for d"
    ]  # fmt: skip
    assert messages[-1].content == "the answer"
    stats = ex.stats
    assert (stats.hits, stats.misses, stats.direct) == (3, 1, 1)
    assert stats.wasted_calls == 1 and stats.refused >= 1
    # hits were not run a second time; the wrong guess ran once (wasted); the side effect once, for real
    assert runs == Counter(
        {("search", "a"): 1, ("search", "b"): 1, ("search", "c"): 1, ("search", "d"): 1,
         ("search", "WRONG"): 1, ("add_note", "x"): 1}
    )  # fmt: skip
    saved = base - wall
    assert stats.time_saved > 2 * TOOL
    assert abs(saved - stats.time_saved) <= 0.2 * stats.time_saved, (saved, stats.time_saved)


def run_agent(spec: LangGraphSpeculation | None) -> tuple[float, list]:
    agent = create_agent(scripted_model(), [search, add_note], middleware=[spec.middleware()] if spec else [])
    started = time.perf_counter()
    out = agent.invoke({"messages": [{"role": "user", "content": "What is x?"}]})
    return time.perf_counter() - started, out["messages"]


def test_create_agent_middleware_hits_misses_and_time_saved():
    run_agent(None)  # warm up
    runs.clear()
    base, _plain = run_agent(None)
    assert len(runs) == 5
    runs.clear()
    ex = executor()
    try:
        wall, messages = run_agent(LangGraphSpeculation(ex, [search, add_note]))
        check_run(messages, ex, base, wall)
        # the speculator saw the conversation so far: the question and each observation
        contexts = ex.predictor.contexts
        assert contexts[0].question == "What is x?" and contexts[0].history == ()
        assert [s.observation for s in contexts[3].history] == ["results for a", "results for b", "saved"]
    finally:
        ex.close()


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
        out = await graph.ainvoke({"messages": [HumanMessage("What is x?")]})
        return time.perf_counter() - started, out["messages"]

    asyncio.run(run(None))
    runs.clear()
    base, _ = asyncio.run(run(None))
    runs.clear()
    ex = executor()
    try:
        wall, messages = asyncio.run(run(LangGraphSpeculation(ex, [search, add_note])))
        check_run(messages, ex, base, wall)
    finally:
        ex.close()


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
