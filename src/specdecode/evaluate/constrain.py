"""Constrained next-call decoding: the JSON schema an answer must follow, and the hf side of it.

A speculator that names a tool the agent does not have, or writes JSON that does not parse,
wastes its slot. With a schema, the engines' own grammar support forces the answer to be one
call object ``{"tool_name": <an offered tool>, "arguments": <that tool's parameters>}``:
vLLM's structured outputs, xgrammar's matcher and token bitmask for hf, ``response_format``
for OpenAI-compatible servers. Nothing here samples by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from specdecode.errors import InputError
from specdecode.records import ToolSpec


def call_branch(tool: ToolSpec) -> dict[str, Any]:
    """The schema of one call to ``tool``."""
    return {
        "type": "object",
        "properties": {
            "tool_name": {"type": "string", "const": tool.name},
            "arguments": tool.parameters or {"type": "object"},
        },
        "required": ["tool_name", "arguments"],
        "additionalProperties": False,
    }


def call_schema(tools: Sequence[ToolSpec]) -> dict[str, Any]:
    """One call object whose ``tool_name`` is one of ``tools`` and whose ``arguments`` follow
    that tool's parameters: an ``anyOf`` over the tools (the branch itself for one tool)."""
    if not tools:
        raise InputError("constrained decoding needs at least one tool to offer")
    branches = [call_branch(t) for t in tools]
    if len(branches) == 1:
        return branches[0]
    return {"type": "object", "anyOf": branches}


def schema_key(schema: dict[str, Any]) -> str:
    """A stable key for caching compiled grammars."""
    return json.dumps(schema, sort_keys=True, ensure_ascii=False)


class XGrammarConstraint:
    """xgrammar for the hf backend: a compiled grammar per schema (cached), one matcher per row.

    Per decoding step: :meth:`fill` writes each constrained row's allowed tokens into a bitmask,
    :meth:`apply` masks the logits, and the picked token is accepted by the row's matcher. A row
    whose matcher has terminated (the object closed and the end-of-turn token accepted) is done.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, stop_token_ids: Sequence[int]):
        try:
            import xgrammar as xgr
        except ImportError:
            raise InputError("constrained decoding with --backend hf needs `pip install xgrammar`") from None
        self.xgr = xgr
        info = xgr.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=sorted(stop_token_ids)
        )
        self.compiler = xgr.GrammarCompiler(info)
        self.vocab_size = vocab_size
        self._compiled: dict[str, Any] = {}

    def matcher(self, schema: dict[str, Any]) -> Any:
        """A fresh matcher for ``schema``: compact JSON, no free whitespace (which a small model
        can fill forever), properties in the schema's order."""
        key = schema_key(schema)
        if key not in self._compiled:
            self._compiled[key] = self.compiler.compile_json_schema(
                schema, any_whitespace=False, strict_mode=True
            )
        return self.xgr.GrammarMatcher(self._compiled[key])

    def mask(self, logits: Any, matchers: Sequence[Any | None]) -> Any:
        """``logits`` (rows × vocab) with the tokens each row's matcher forbids set to -inf;
        rows without a matcher are left as they are."""
        rows = [i for i, m in enumerate(matchers) if m is not None]
        if not rows:
            return logits
        bitmask = self.xgr.allocate_token_bitmask(len(matchers), self.vocab_size)
        for i in rows:
            matchers[i].fill_next_token_bitmask(bitmask, i)
        logits = logits.float().clone()
        self.xgr.apply_token_bitmask_inplace(
            logits, bitmask.to(logits.device), vocab_size=self.vocab_size, indices=rows
        )
        return logits
