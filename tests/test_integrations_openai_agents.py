"""OpenAI Agents SDK adapter against the real package with a custom scripted ``Model``."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

pytest.importorskip("agents")

from agents import Agent, RunHooks, Runner, function_tool, set_tracing_disabled
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
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
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from specdecode.integrations.openai_agents import AgentsSpeculation, history_from_items

set_tracing_disabled(True)  # no trace export (it would try the network)


@function_tool
def search(query: str) -> str:
    """Search the web."""
    time.sleep(TOOL)
    return run_search(query)


@function_tool
async def add_note(text: str) -> str:
    """Write a note (a side effect)."""
    await asyncio.sleep(TOOL)
    return run_add_note(text)


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
                    content=[ResponseOutputText(type="output_text", text=ANSWER, annotations=[])],
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
    result = await Runner.run(agent, QUESTION, hooks=hooks)
    return time.perf_counter() - started, result


def test_agents_sdk_hits_misses_and_time_saved():
    asyncio.run(run(None))  # warm up

    def play() -> tuple[float, float]:
        RUNS.clear()
        base, result = asyncio.run(run(None))
        assert result.final_output == ANSWER
        RUNS.clear()
        ex = executor()
        inner = CountingHooks()
        try:
            wall, result = asyncio.run(run(AgentsSpeculation(ex), inner))
            assert result.final_output == ANSWER
            outputs = [i.raw_item["output"] for i in result.new_items if i.type == "tool_call_output_item"]
            assert outputs == OBSERVATIONS
            assert inner.llm_starts == len(CALLS) + 1  # the user's own hooks still run
            return check_speculated_run(ex, base, wall)
        finally:
            ex.close()

    saving_agrees(play)


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
