"""LangGraph / LangChain adapter (extra ``specdecode[langgraph]``).

Two ways in, one :class:`LangGraphSpeculation` behind both::

    spec = LangGraphSpeculation(executor, tools)             # tools: the BaseTools the agent has

    # 1. create_agent (LangChain v1): a middleware with wrap_tool_call and a model hook
    agent = create_agent(model, tools, middleware=[spec.middleware()])

    # 2. a hand-built LangGraph graph: ToolNode's own interceptors, and one call in the model node
    node = ToolNode(tools, wrap_tool_call=spec.wrap_tool_call, awrap_tool_call=spec.awrap_tool_call)
    def call_model(state):
        spec.before_model(state["messages"])                 # speculation starts as the model thinks
        return {"messages": [model.invoke(state["messages"])]}

A hit returns the prepared result as the ``ToolMessage`` the tool would have produced (with
the real call's id); any other call runs through ``ToolNode``'s own execution. Only tools
marked ``read_only`` in the executor's registry are ever pre-run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.tools import BaseTool

from specdecode.integrations._core import Speculation
from specdecode.records import ToolCall, TraceStep
from specdecode.speculate.executor import SpeculativeExecutor

SPECULATIVE_CALL_ID = "specdecode-speculative-call"


def _text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else getattr(message, "content", "")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, str) or (isinstance(part, dict) and part.get("type") == "text")
        )
    return "" if content is None else str(content)


def _kind(message: Any) -> str:
    if isinstance(message, BaseMessage):
        return message.type  # human, ai, tool, system
    if isinstance(message, dict):
        return {"user": "human", "assistant": "ai"}.get(message.get("role", ""), message.get("role", ""))
    return ""


def history_from_messages(messages: Sequence[Any]) -> tuple[str | None, list[TraceStep]]:
    """LangChain messages → (the first human message, one step per tool call with the
    matching ``ToolMessage`` as its observation)."""
    question: str | None = None
    results: dict[str, str] = {}
    for message in messages:
        if _kind(message) == "tool":
            call_id = message.get("tool_call_id") if isinstance(message, dict) else message.tool_call_id
            results[str(call_id)] = _text(message)
    steps: list[TraceStep] = []
    for message in messages:
        kind = _kind(message)
        if kind == "human" and question is None:
            question = _text(message)
        elif kind == "ai":
            calls = message.get("tool_calls") if isinstance(message, dict) else message.tool_calls
            for n, call in enumerate(calls or []):
                if isinstance(call, dict) and "function" in call:  # OpenAI-style dict message
                    name, args = call["function"]["name"], call["function"].get("arguments") or {}
                else:
                    name, args = call["name"], call.get("args") or {}
                steps.append(
                    TraceStep(
                        thought=_text(message) if n == 0 else "",
                        action=ToolCall(tool_name=name, arguments=args),
                        observation=results.get(str(call.get("id"))),
                    )
                )
    return question, steps


def _tool_function(tool: BaseTool) -> Callable[..., Any]:
    """A speculative run of ``tool``: LangChain's own invocation (validation and output
    formatting), answered as a ``ToolMessage`` with a placeholder id."""

    async def run(**arguments: Any) -> Any:
        return await tool.ainvoke(
            {"type": "tool_call", "name": tool.name, "args": arguments, "id": SPECULATIVE_CALL_ID}
        )

    run.__name__ = tool.name
    return run


def _as_message(value: Any, call: dict[str, Any]) -> Any:
    """A prepared result → the ``ToolMessage`` of the real call."""
    if isinstance(value, ToolMessage):
        return value.model_copy(update={"tool_call_id": call["id"]})
    if not isinstance(value, str):
        try:
            value = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            value = str(value)
    return ToolMessage(content=value, name=call["name"], tool_call_id=call["id"])


class LangGraphSpeculation(Speculation):
    """Speculative tool calls for LangGraph's ``ToolNode`` and LangChain's ``create_agent``.

    Args:
        executor: the :class:`SpeculativeExecutor` (its registry decides what is read-only).
        tools: the agent's LangChain tools; each becomes the executor's function for its name
            unless the executor already has a plain function for it.
        speculate_after_tool: also speculate right after each tool result (for graphs whose
            model node does not call :meth:`before_model`).
    """

    def __init__(
        self,
        executor: SpeculativeExecutor,
        tools: Sequence[BaseTool | Callable[..., Any]] = (),
        *,
        speculate_after_tool: bool = False,
    ):
        super().__init__(executor)
        self.tool_names: list[str] = []
        for tool in tools:
            if isinstance(tool, BaseTool):
                self.add_tool(tool.name, _tool_function(tool))
                self.tool_names.append(tool.name)
            elif callable(tool):
                self.add_tool(tool.__name__, tool)
                self.tool_names.append(tool.__name__)
        self.speculate_after_tool = speculate_after_tool

    # ------------------------------------------------------------------ model hook
    def before_model(self, messages: Sequence[Any], tools: Sequence[str] | None = None) -> None:
        """The model is about to be called with ``messages``: speculate its next tool call."""
        question, steps = history_from_messages(messages)
        self.begin(question, steps, tools or self.tool_names or None)

    # ------------------------------------------------------------------ ToolNode interceptors
    def wrap_tool_call(self, request: Any, execute: Callable[[Any], Any]) -> Any:
        """``ToolNode(wrap_tool_call=...)``: the prepared ``ToolMessage`` on a match, else
        ``execute(request)``."""
        call = request.tool_call
        value, from_real = self.call(call["name"], call.get("args") or {}, lambda: execute(request))
        result = value if from_real else _as_message(value, call)
        self._after_tool(request, result)
        return result

    async def awrap_tool_call(self, request: Any, execute: Callable[[Any], Any]) -> Any:
        """``ToolNode(awrap_tool_call=...)``: :meth:`wrap_tool_call` for ``ainvoke``."""
        call = request.tool_call
        value, from_real = await self.acall(call["name"], call.get("args") or {}, lambda: execute(request))
        result = value if from_real else _as_message(value, call)
        self._after_tool(request, result)
        return result

    def _after_tool(self, request: Any, result: Any) -> None:
        if not self.speculate_after_tool or not isinstance(result, ToolMessage):
            return
        state = request.state
        messages = state.get("messages") if isinstance(state, dict) else getattr(state, "messages", state)
        if isinstance(messages, list):
            self.before_model([*messages, result])

    # ------------------------------------------------------------------ create_agent
    def middleware(self) -> Any:
        """An ``AgentMiddleware`` for ``create_agent(..., middleware=[...])``: the model hook
        (``wrap_model_call``) starts speculation as each model call begins; ``wrap_tool_call``
        answers matches."""
        from langchain.agents.middleware import AgentMiddleware

        spec = self

        class SpeculationMiddleware(AgentMiddleware):
            def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
                spec.before_model(request.messages, _names(request.tools) or None)
                return handler(request)

            async def awrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
                spec.before_model(request.messages, _names(request.tools) or None)
                return await handler(request)

            def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
                return spec.wrap_tool_call(request, handler)

            async def awrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
                return await spec.awrap_tool_call(request, handler)

        return SpeculationMiddleware()


def _names(tools: Sequence[Any] | None) -> list[str]:
    out = []
    for tool in tools or []:
        name = (
            tool.name
            if isinstance(tool, BaseTool)
            else (tool.get("name") if isinstance(tool, dict) else None)
        )
        if isinstance(tool, dict) and name is None:
            name = (tool.get("function") or {}).get("name")
        if name:
            out.append(name)
    return out


__all__ = ["LangGraphSpeculation", "history_from_messages"]
