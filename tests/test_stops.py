"""The first-call scanner: nested arguments and ``}}`` inside strings come back whole."""

from __future__ import annotations

import json

import pytest

from specdecode.evaluate.parse import parse_calls
from specdecode.evaluate.stops import CallScanner, cut_at_stop, cut_first_call, first_call_end

NESTED = '{"tool_name": "f", "arguments": {"filter": {"year": 2020}}}'
IN_STRING = '{"tool_name": "python", "arguments": {"code": "t = \\"{{x}}\\"; d = {\\"a\\": {}}"}}'
BRACKETS = '{"tool_name": "f", "arguments": {"ids": [1, [2, {"k": "]}"}]], "s": "\\\\"}}'


@pytest.mark.parametrize("call", [NESTED, IN_STRING, BRACKETS])
def test_the_whole_call_comes_back(call: str) -> None:
    text = call + '\n{"tool_name": "g", "arguments": {}}<|im_end|>'
    assert first_call_end(text) == len(call)
    assert cut_first_call(text) == call
    assert json.loads(cut_first_call(text))["tool_name"] in ("f", "python")


def test_regression_the_old_stop_strings_cut_these_calls_short() -> None:
    # What FIRST_CALL_STOPS = ("}}", "</tool_call>") did: the call no longer parses as given.
    for call in (NESTED, IN_STRING):
        old = cut_at_stop(call, ("}}", "</tool_call>"))
        assert old != call
        assert cut_first_call(call) == call


def test_incomplete_calls_and_prose() -> None:
    assert first_call_end("") is None
    assert first_call_end("I will search first.") is None
    assert first_call_end('{"tool_name": "f", "arguments": {"q": "a}') is None
    assert first_call_end('{"tool_name": "f", "arguments": {"q": "}}"') is None
    prose = 'The next call is: {"tool_name": "f", "arguments": {}} and then more'
    assert cut_first_call(prose) == 'The next call is: {"tool_name": "f", "arguments": {}}'
    assert cut_first_call("no call at all") == "no call at all"


def test_hermes_block_ends_at_its_closing_tag() -> None:
    block = '<tool_call>\n{"name": "f", "arguments": {"code": "s = \'</tool_call>\'"}}\n</tool_call>'
    text = "Thinking done.\n" + block + "\n<tool_call>\n{}\n</tool_call>"
    assert cut_first_call(text) == "Thinking done.\n" + block
    assert first_call_end("<tool_call>\n" + NESTED) is None  # no closing tag yet
    assert parse_calls(cut_first_call(text)).calls[0].tool_name == "f"


@pytest.mark.parametrize("text", [NESTED + " tail", "pre <tool_call>" + IN_STRING + "</tool_call> x"])
def test_incremental_feeding_matches_one_shot(text: str) -> None:
    for size in (1, 2, 3, 7):
        scanner = CallScanner()
        end = None
        for start in range(0, len(text), size):
            end = scanner.feed(text[start : start + size])
            if end is not None:
                break
        assert end == first_call_end(text), size
