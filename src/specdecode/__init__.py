"""specdecode: train and measure speculators that guess an agent's next tool call."""

from specdecode.errors import InputError
from specdecode.jsonl import read_records, write_json, write_jsonl
from specdecode.records import (
    ChatMessage,
    ChatRecord,
    ChatToolCall,
    QuestionRecord,
    ToolCall,
    ToolSpec,
    TraceRecord,
    TraceStep,
)
from specdecode.registry import Registry, load_registry
from specdecode.speculate.executor import SpeculativeExecutor
from specdecode.speculate.policy import LaunchPolicy

__version__ = "0.1.0"
__all__ = [
    "ChatMessage",
    "ChatRecord",
    "ChatToolCall",
    "InputError",
    "LaunchPolicy",
    "QuestionRecord",
    "Registry",
    "SpeculativeExecutor",
    "ToolCall",
    "ToolSpec",
    "TraceRecord",
    "TraceStep",
    "__version__",
    "load_registry",
    "read_records",
    "write_json",
    "write_jsonl",
]
