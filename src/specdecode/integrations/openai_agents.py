"""OpenAI Agents SDK adapter (extra ``specdecode[openai-agents]``)::

    spec = AgentsSpeculation(executor)
    agent = spec.agent(Agent(name="a", model=..., tools=[search, add_note]))   # tools wrapped
    result = await Runner.run(agent, question, hooks=spec.hooks())            # on_llm_start

:meth:`AgentsSpeculation.wrap` replaces a ``FunctionTool``'s ``on_invoke_tool`` with one that
returns the prepared result on a match and otherwise calls the original ``on_invoke_tool``
(the SDK's own parsing, validation and error handling); speculative calls run the plain
Python function behind the tool (``FunctionTool.__wrapped__``, or the executor's own entry).
:meth:`AgentsSpeculation.hooks` is a ``RunHooks`` whose ``on_llm_start`` hands the executor the
conversation (the model's input items) as the model call begins. Only tools marked
``read_only`` in the executor's registry are ever pre-run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

from agents import Agent, FunctionTool, RunHooks

from specdecode.integrations._core import Speculation
from specdecode.records import ToolCall, TraceStep
from specdecode.speculate.executor import SpeculativeExecutor

_WRAPPED = "__specdecode_speculative__"


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else getattr(item, key, None)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(_get(part, "text")) for part in content if isinstance(_get(part, "text"), str))
    return "" if content is None else str(content)


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw.strip() else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def history_from_items(items: str | Sequence[Any]) -> tuple[str | None, list[TraceStep]]:
    """Responses-API input items → (the first user message, one step per ``function_call``
    with its ``function_call_output`` as the observation)."""
    if isinstance(items, str):
        return items, []
    question: str | None = None
    outputs = {
        _get(i, "call_id"): _text(_get(i, "output"))
        for i in items
        if _get(i, "type") == "function_call_output"
    }
    steps: list[TraceStep] = []
    thought: list[str] = []
    for item in items:
        kind, role = _get(item, "type"), _get(item, "role")
        if role == "user" and kind in (None, "message") and question is None:
            question = _text(_get(item, "content"))
        elif role == "assistant" and kind in (None, "message"):
            thought.append(_text(_get(item, "content")))
        elif kind == "function_call":
            steps.append(
                TraceStep(
                    thought="\n".join(t for t in thought if t).strip(),
                    action=ToolCall(
                        tool_name=_get(item, "name"), arguments=_arguments(_get(item, "arguments"))
                    ),
                    observation=outputs.get(_get(item, "call_id")),
                )
            )
            thought = []
    return question, steps


class AgentsSpeculation(Speculation):
    """Speculative tool calls for the OpenAI Agents SDK (see the module doc)."""

    def __init__(self, executor: SpeculativeExecutor, tools: Sequence[Any] = ()):
        super().__init__(executor)
        self.tool_names: list[str] = []
        for tool in tools:
            self.wrap(tool)

    def wrap(self, tool: Any) -> Any:
        """A copy of a ``FunctionTool`` whose invocation goes through the executor (other
        tools are returned unchanged)."""
        if not isinstance(tool, FunctionTool) or getattr(tool.on_invoke_tool, _WRAPPED, False):
            return tool
        try:
            plain: Callable[..., Any] | None = tool.__wrapped__  # the @function_tool function
        except AttributeError:
            plain = None
        if plain is not None:
            self.add_tool(tool.name, plain)
        if tool.name not in self.tool_names:
            self.tool_names.append(tool.name)
        original = tool.on_invoke_tool
        spec = self

        async def on_invoke_tool(ctx: Any, input: str) -> Any:
            value, _ = await spec.acall(tool.name, _arguments(input), lambda: original(ctx, input))
            return value

        setattr(on_invoke_tool, _WRAPPED, True)
        return dataclasses.replace(tool, on_invoke_tool=on_invoke_tool)

    def agent(self, agent: Agent[Any]) -> Agent[Any]:
        """A clone of ``agent`` with its function tools wrapped."""
        return agent.clone(tools=[self.wrap(t) for t in agent.tools])

    def before_model(self, items: str | Sequence[Any]) -> None:
        """The model is about to be called with ``items``: speculate its next tool call."""
        question, steps = history_from_items(items)
        self.begin(question, steps, self.tool_names or None)

    def hooks(self, inner: RunHooks[Any] | None = None) -> RunHooks[Any]:
        """``RunHooks`` for ``Runner.run(..., hooks=...)``: ``on_llm_start`` starts speculation;
        every hook of ``inner`` (if given) still runs."""
        spec = self

        class SpeculationHooks(RunHooks):  # type: ignore[type-arg]
            def __init__(self) -> None:
                if inner is not None:  # every other hook is the user's own
                    for name in dir(RunHooks):
                        if name.startswith("on_") and name != "on_llm_start":
                            setattr(self, name, getattr(inner, name))

            async def on_llm_start(
                self, context: Any, agent: Any, system_prompt: Any, input_items: Any
            ) -> None:
                spec.before_model(input_items)
                if inner is not None:
                    await inner.on_llm_start(context, agent, system_prompt, input_items)

        return SpeculationHooks()


__all__ = ["AgentsSpeculation", "history_from_items"]
