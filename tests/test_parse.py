"""The tool-call parser over a corpus of real-looking outputs in every format."""

from __future__ import annotations

import json

import pytest

from conftest import DATA
from specdecode.evaluate.parse import parse_calls

CORPUS = json.loads((DATA / "parser_corpus.json").read_text())
TOOLS = {"search", "wikipedia", "calculator", "final_answer", "wiki.get_revisions", "wiki.get_page"}
POSITIONAL = {"calculator": ["expression"], "search": ["query"]}


@pytest.mark.parametrize("case", CORPUS, ids=[c["name"] for c in CORPUS])
def test_parser_corpus(case: dict) -> None:
    parsed = parse_calls(case["text"], known_tools=TOOLS, positional=POSITIONAL)
    assert [[c.tool_name, c.arguments] for c in parsed.calls] == case["calls"]
    assert parsed.format == case["format"]
    assert parsed.ok == (bool(case["calls"]) or case.get("no_call", False))


def test_structured_tool_calls_win_over_text() -> None:
    calls = [{"id": "1", "type": "function", "function": {"name": "search", "arguments": '{"query": "q"}'}}]
    parsed = parse_calls('{"tool_name": "other", "arguments": {}}', tool_calls=calls)
    assert parsed.format == "tool_calls" and parsed.calls[0].tool_name == "search"
    assert parsed.calls[0].arguments == {"query": "q"}


def test_corpus_covers_every_format() -> None:
    assert {c["format"] for c in CORPUS} >= {"json", "hermes", "react", "python", "none"}
