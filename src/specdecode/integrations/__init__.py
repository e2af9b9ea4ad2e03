"""Speculative tool calls inside the agent frameworks people already run, and traces from the
spans they already export. Every framework adapter is an optional extra, imported only when
its module is::

    from specdecode.integrations import speculative_tool          # any framework, no extra
    from specdecode.integrations.langgraph import LangGraphSpeculation      # [langgraph]
    from specdecode.integrations.openai_agents import AgentsSpeculation     # [openai-agents]
    from specdecode.integrations.pydantic_ai import PydanticAISpeculation   # [pydantic-ai]
    from specdecode.integrations.otlp import import_otlp           # OTLP/JSON spans → traces

Nothing in the rest of ``specdecode`` imports this package.
"""

from specdecode.integrations._core import Speculation, speculative_tool

__all__ = ["Speculation", "speculative_tool"]
