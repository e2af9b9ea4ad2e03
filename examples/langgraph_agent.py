"""A LangGraph agent whose read-only tool calls are pre-run by a speculator.

    python examples/langgraph_agent.py                       # pattern-table speculator (instant)
    python examples/langgraph_agent.py --speculator smollm2  # the embedded SmolLM2-135M demo model

No network: the actor is LangChain's scripted fake chat model (it "thinks" for --think
seconds per turn), the tools sleep to stand in for real latency. ``pip install
specdecode[langgraph]`` first. The graph is hand-built (model node + ``ToolNode``) so the two
hooks are visible: ``spec.before_model(messages)`` in the model node starts speculation as
the model begins to think; ``ToolNode(wrap_tool_call=..., awrap_tool_call=...)`` answers
matching calls from the prepared results. ``create_agent(model, tools,
middleware=[spec.middleware()])`` does the same in one line.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from specdecode.integrations.langgraph import LangGraphSpeculation
from specdecode.records import ToolSpec, TraceRecord
from specdecode.registry import Registry
from specdecode.speculate.executor import SpeculativeExecutor
from specdecode.speculate.predictors import PatternPredictor

TOOL_SECONDS = 0.4
QUESTION = "Which river flows through the capital of Austria?"

# ---------------------------------------------------------------- tools (two read-only, one not)
notes: list[str] = []


@tool
def search(query: str) -> str:
    """Search the web; returns the top result's title."""
    time.sleep(TOOL_SECONDS)
    return "Vienna" if "capital" in query.lower() else f"{query} (encyclopedia)"


@tool
def wikipedia(title: str) -> str:
    """Read a Wikipedia page."""
    time.sleep(TOOL_SECONDS)
    return {
        "Vienna": "Vienna lies on the Danube.",
        "Danube": "The Danube is Europe's second-longest river.",
    }.get(title, f"No page {title}.")


@tool
def save_note(text: str) -> str:
    """Save a note for the user (a side effect: never run speculatively)."""
    notes.append(text)
    return "saved"


REGISTRY = Registry(
    name="example",
    tools=(
        ToolSpec(name="search", description="Search the web.", read_only=True, parameters={
            "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        ToolSpec(name="wikipedia", description="Read a Wikipedia page.", read_only=True, parameters={
            "type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}),
        ToolSpec(name="save_note", description="Save a note.", read_only=False, parameters={
            "type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
    ),
)  # fmt: skip

# ---------------------------------------------------------------- the actor: a scripted chat model
SCRIPT = [
    ("search", {"query": "capital of Austria"}),
    ("wikipedia", {"title": "Vienna"}),
    ("wikipedia", {"title": "Danube"}),
    ("save_note", {"text": "Vienna is on the Danube."}),
]


class ScriptedActor(GenericFakeChatModel):
    think: float = 0.5

    def bind_tools(self, tools, **kwargs):
        return self

    async def _agenerate(self, *args, **kwargs):
        await asyncio.sleep(self.think)
        return super()._generate(*args, **kwargs)


def actor(think: float) -> ScriptedActor:
    replies = [
        AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call-{i}"}])
        for i, (name, args) in enumerate(SCRIPT)
    ]
    return ScriptedActor(messages=iter([*replies, AIMessage(content="The Danube.")]), think=think)


# ---------------------------------------------------------------- speculators
def pattern_speculator() -> PatternPredictor:
    """A previous-tools → next-call table fitted on a few earlier traces of this agent."""

    def step(tool: str, observation: str, **arguments: str) -> dict:
        return {"action": {"tool_name": tool, "arguments": arguments}, "observation": observation}

    traces = [
        TraceRecord(id=f"t{i}", question=q, trace=[
            step("search", city, query=f"capital of {country}"),
            step("wikipedia", f"{city} lies on the {river}.", title=city),
            step("wikipedia", "…", title=river),
        ])
        for i, (q, country, city, river) in enumerate([
            ("Which river flows through the capital of Hungary?", "Hungary", "Budapest", "Danube"),
            ("Which river flows through the capital of France?", "France", "Paris", "Seine"),
            ("Which river flows through the capital of England?", "England", "London", "Thames"),
        ])
    ]  # fmt: skip
    return PatternPredictor.fit(traces)


def smollm2_speculator():
    """The embedded SmolLM2-135M demo model (no adapter), through the hf backend."""
    from specdecode.evaluate.backends import make_backend
    from specdecode.speculate.predictors import ModelPredictor

    return ModelPredictor(
        make_backend("hf", "smollm2-135m"), adapter=False, max_new_tokens=48, temperature=0.0
    )


# ---------------------------------------------------------------- the graph
def build(spec: LangGraphSpeculation | None, think: float):
    model = actor(think)

    async def call_model(state: MessagesState):
        if spec is not None:
            spec.before_model(state["messages"])  # speculation starts as the model thinks
        return {"messages": [await model.ainvoke(state["messages"])]}

    tools = [search, wikipedia, save_note]
    tool_node = (
        ToolNode(tools, wrap_tool_call=spec.wrap_tool_call, awrap_tool_call=spec.awrap_tool_call)
        if spec is not None
        else ToolNode(tools)
    )
    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", tool_node)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "model")
    return graph.compile()


async def run(spec: LangGraphSpeculation | None, think: float) -> tuple[float, str]:
    graph = build(spec, think)
    started = time.perf_counter()
    out = await graph.ainvoke({"messages": [HumanMessage(QUESTION)]})
    return time.perf_counter() - started, out["messages"][-1].content


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speculator", choices=["pattern", "smollm2"], default="pattern")
    parser.add_argument("--think", type=float, default=0.5, help="actor seconds per turn")
    args = parser.parse_args()

    base, answer = asyncio.run(run(None, args.think))
    print(f"without speculation: {base:.2f} s → {answer}")
    notes.clear()
    predictor = pattern_speculator() if args.speculator == "pattern" else smollm2_speculator()
    executor = SpeculativeExecutor(predictor, REGISTRY, {})
    spec = LangGraphSpeculation(executor, [search, wikipedia, save_note])
    try:
        wall, answer = asyncio.run(run(spec, args.think))
    finally:
        executor.close()
    s = executor.stats
    print(f"with speculation:    {wall:.2f} s → {answer}")
    print(
        f"hits {s.hits}, misses {s.misses}, direct {s.direct}, wasted {s.wasted_calls}, "
        f"refused {s.refused}; time saved {s.time_saved:.2f} s (measured {base - wall:.2f} s)"
    )
    print(f"notes saved by the speculative run (once, for real): {notes}")


if __name__ == "__main__":
    main()
