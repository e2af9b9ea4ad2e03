"""Pydantic AI adapter (extra ``specdecode[pydantic-ai]``)::

    spec = PydanticAISpeculation(executor, [search, add_note])      # the plain tool functions
    agent = Agent(model, tools=[search, add_note], capabilities=[spec.capability()])
    result = await agent.run(question)

:meth:`PydanticAISpeculation.capability` uses Pydantic AI's capability hooks:
``before_model_request`` hands the executor the conversation as each model request begins,
``wrap_tool_execute`` returns the prepared result on a match and otherwise calls the
framework's own ``handler`` (its before/after hooks and error handling run as usual).
Versions without capabilities: wrap the agent's toolset instead —
``Agent(model, toolsets=[spec.toolset(FunctionToolset([search, add_note]))])`` — whose
``for_run_step`` is the model hook. Speculative calls run the plain functions, so tools that
take a ``RunContext`` are only ever run for real. Only tools marked ``read_only`` in the
executor's registry are ever pre-run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.tools import Tool
from pydantic_ai.toolsets import WrapperToolset

from specdecode.integrations._core import Speculation
from specdecode.records import ToolCall, TraceStep
from specdecode.speculate.executor import SpeculativeExecutor

try:  # the hooks API (capabilities); absent from older versions
    from pydantic_ai.capabilities import AbstractCapability
except ImportError:  # pragma: no cover - depends on the installed version
    AbstractCapability = None  # type: ignore[assignment,misc]


def _prompt_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(part for part in content if isinstance(part, str))
    return str(content)


def history_from_messages(messages: Sequence[Any]) -> tuple[str | None, list[TraceStep]]:
    """Pydantic AI messages → (the first user prompt, one step per ``ToolCallPart`` with the
    matching ``ToolReturnPart`` as its observation)."""
    question: str | None = None
    results: dict[str, str] = {}
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, ToolReturnPart):
                    results[part.tool_call_id] = part.model_response_str()
                elif isinstance(part, UserPromptPart) and question is None:
                    question = _prompt_text(part.content)
    steps: list[TraceStep] = []
    for message in messages:
        if not isinstance(message, ModelResponse):
            continue
        thought = "\n".join(p.content for p in message.parts if isinstance(p, TextPart)).strip()
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                steps.append(
                    TraceStep(
                        thought=thought,
                        action=ToolCall(tool_name=part.tool_name, arguments=part.args_as_dict()),
                        observation=results.get(part.tool_call_id),
                    )
                )
                thought = ""
    return question, steps


def _arguments(args: Any) -> dict[str, Any]:
    if isinstance(args, dict):
        return args
    dump = getattr(args, "model_dump", None)
    return dump() if callable(dump) else {}


class PydanticAISpeculation(Speculation):
    """Speculative tool calls for Pydantic AI (see the module doc).

    Args:
        executor: the :class:`SpeculativeExecutor` (its registry decides what is read-only).
        tools: the plain tool functions (or ``pydantic_ai.Tool`` objects), registered as the
            executor's functions under their tool names unless it has them already.
    """

    def __init__(self, executor: SpeculativeExecutor, tools: Sequence[Any] = ()):
        super().__init__(executor)
        self.tool_names: list[str] = []
        for tool in tools:
            if isinstance(tool, Tool):
                name, function = tool.name, tool.function
            else:
                name, function = tool.__name__, tool
            self.add_tool(name, function)
            self.tool_names.append(name)

    def before_model(self, messages: Sequence[Any]) -> None:
        """The model is about to be asked, with ``messages`` as the conversation."""
        question, steps = history_from_messages(messages)
        self.begin(question, steps, self.tool_names or None)

    async def run_tool(self, name: str, args: Any, real: Callable[[], Any]) -> Any:
        value, _ = await self.acall(name, _arguments(args), real)
        return value

    def capability(self) -> Any:
        """A capability for ``Agent(..., capabilities=[...])`` (the hooks API)."""
        if AbstractCapability is None:  # pragma: no cover
            raise RuntimeError("this pydantic-ai has no capabilities; use spec.toolset(...)")
        spec = self

        @dataclass
        class SpeculationCapability(AbstractCapability[Any]):  # type: ignore[misc,valid-type]
            async def before_model_request(self, ctx: Any, request_context: Any) -> Any:
                spec.before_model(request_context.messages)
                return request_context

            async def wrap_tool_execute(
                self, ctx: Any, *, call: Any, tool_def: Any, args: Any, handler: Any
            ) -> Any:
                value, _ = await spec.acall(call.tool_name, call.args_as_dict(), lambda: handler(args))
                return value

        return SpeculationCapability()

    def toolset(self, toolset: Any) -> Any:
        """The fallback: ``toolset`` wrapped so that each run step starts speculation and each
        tool call goes through the executor."""
        return SpeculativeToolset(wrapped=toolset, speculation=self)


@dataclass
class SpeculativeToolset(WrapperToolset[Any]):
    """A ``WrapperToolset`` feeding a :class:`PydanticAISpeculation` (older Pydantic AI)."""

    speculation: PydanticAISpeculation | None = None

    async def for_run_step(self, ctx: Any) -> Any:
        if self.speculation is not None:
            self.speculation.before_model(ctx.messages)
        return await super().for_run_step(ctx)

    async def call_tool(self, name: str, tool_args: dict[str, Any], ctx: Any, tool: Any) -> Any:
        if self.speculation is None:
            return await super().call_tool(name, tool_args, ctx, tool)
        return await self.speculation.run_tool(
            name, tool_args, lambda: super(SpeculativeToolset, self).call_tool(name, tool_args, ctx, tool)
        )


__all__ = ["PydanticAISpeculation", "SpeculativeToolset", "history_from_messages"]
