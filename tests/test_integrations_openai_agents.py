"""OpenAI Agents SDK adapter against the real package with a custom scripted ``Model``."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest

pytest.importorskip("agents")

from agents import Agent, RunHooks, Runner, function_tool, set_tracing_disabled
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from specdecode.integrations.openai_agents import AgentsSpeculation, history_from_items
from specdecode.integrations.testing import ScriptedPredictor, call, registry_of
from specdecode.speculate.executor import SpeculativeExecutor

set_tracing_disabled(True)  # no trace export (it would try the network)

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


@function_tool
def search(query: str) -> str:
    """Search the web."""
    runs[("search", query)] += 1
    time.sleep(TOOL)
    return f"results for {query}"


@function_tool
async def add_note(text: str) -> str:
    """Write a note (a side effect)."""
    runs[("add_note", text)] += 1
    await asyncio.sleep(TOOL)
    return "saved"


class ScriptedModel(Model):
    """Answers with the next scripted function call after THINK seconds, then a message."""

    def __init__(self) -> None:
        self.turn = 0

    async def get_response(
        self, system_instructions, input, model_settings, tools, output_schema, handoffs, tracing, **kw
    ):
        await asyncio.sleep(THINK)
        turn, self.turn = self.turn, self.turn + 1
        if turn < len(CALLS):
            name, args = CALLS[turn]
            output = [
                ResponseFunctionToolCall(
                    type="function_call", call_id=f"call-{turn}", name=name,
                    arguments=json.dumps(args), id=f"fc-{turn}", status="completed",
                )
            ]  # fmt: skip
        else:
            output = [
                ResponseOutputMessage(
                    id="msg", type="message", role="assistant", status="completed",
                    content=[ResponseOutputText(type="output_text", text="the answer", annotations=[])],
                )
            ]  # fmt: skip
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args, **kwargs):
        raise NotImplementedError


class CountingHooks(RunHooks):
    def __init__(self) -> None:
        self.llm_starts = 0

    async def on_llm_start(self, context, agent, system_prompt, input_items):
        self.llm_starts += 1


async def run(spec: AgentsSpeculation | None, hooks: RunHooks | None = None):
    agent = Agent(name="assistant", model=ScriptedModel(), tools=[search, add_note])
    if spec is not None:
        agent, hooks = spec.agent(agent), spec.hooks(hooks)
    started = time.perf_counter()
    result = await Runner.run(agent, "What is x?", hooks=hooks)
    return time.perf_counter() - started, result


def test_agents_sdk_hits_misses_and_time_saved():
    asyncio.run(run(None))  # warm up
    runs.clear()
    base, result = asyncio.run(run(None))
    assert result.final_output == "the answer"
    runs.clear()
    ex = SpeculativeExecutor(ScriptedPredictor(GUESSES), registry_of({"search": True, "add_note": False}), {})
    inner = CountingHooks()
    try:
        wall, result = asyncio.run(run(AgentsSpeculation(ex), inner))
        assert result.final_output == "the answer"
        outputs = [i.raw_item["output"] for i in result.new_items if i.type == "tool_call_output_item"]
        assert outputs == ["results for a", "results for b", "saved", "results for c", "results for d"]
        stats = ex.stats
        assert (stats.hits, stats.misses, stats.direct) == (3, 1, 1)
        assert stats.wasted_calls == 1 and stats.refused >= 1
        assert runs == Counter(
            {("search", "a"): 1, ("search", "b"): 1, ("search", "c"): 1, ("search", "d"): 1,
             ("search", "WRONG"): 1, ("add_note", "x"): 1}
        )  # fmt: skip
        assert inner.llm_starts == len(CALLS) + 1  # the user's own hooks still run
        contexts = ex.predictor.contexts
        assert contexts[0].question == "What is x?"
        assert [s.observation for s in contexts[3].history] == ["results for a", "results for b", "saved"]
        saved = base - wall
        assert stats.time_saved > 2 * TOOL
        assert abs(saved - stats.time_saved) <= 0.2 * stats.time_saved, (saved, stats.time_saved)
    finally:
        ex.close()


def test_history_from_items():
    items = [
        {"role": "user", "content": "q?"},
        {"type": "function_call", "call_id": "1", "name": "search", "arguments": '{"query": "a"}'},
        {"type": "function_call_output", "call_id": "1", "output": "A"},
        {"type": "function_call", "call_id": "2", "name": "search", "arguments": "{}"},
    ]
    question, steps = history_from_items(items)
    assert question == "q?"
    assert [(s.action.arguments, s.observation) for s in steps] == [({"query": "a"}, "A"), ({}, None)]
    assert history_from_items("just a question") == ("just a question", [])
