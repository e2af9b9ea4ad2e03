"""Strict JSONL reading: what is accepted, what is refused, and atomic writing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specdecode import ChatRecord, InputError, TraceRecord, read_records, write_jsonl
from specdecode.jsonl import ReadReport, atomic_path

TRACE = {
    "id": "a",
    "question": "q?",
    "trace": [{"thought": "t", "action": {"tool_name": "search", "arguments": {"query": "x"}}}],
}


def test_bom_crlf_blank_lines_and_extra_fields_are_accepted(tmp_path: Path) -> None:
    second = dict(TRACE, id="b", custom={"kept": True})
    raw = (
        b"\xef\xbb\xbf"
        + json.dumps(TRACE).encode()
        + b"\r\n\r\n   \n"
        + json.dumps(second).encode()
        + b"\r\n"
    )
    path = tmp_path / "t.jsonl"
    path.write_bytes(raw)
    records = read_records(path, TraceRecord)
    assert [r.id for r in records] == ["a", "b"]
    assert records[1].model_dump()["custom"] == {"kept": True}


def test_arguments_given_as_json_string_are_parsed(tmp_path: Path) -> None:
    chat = {
        "id": "c",
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"type": "function", "function": {"name": "search", "arguments": '{"query": "x"}'}}
                ],
            },
        ],
    }
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(chat) + "\n")
    [record] = read_records(path, ChatRecord)
    assert record.messages[1].tool_calls[0].function.arguments == {"query": "x"}


def test_error_names_path_line_and_field(tmp_path: Path) -> None:
    bad = dict(TRACE, id="b", trace=[{"action": {"tool_name": "s", "arguments": [1]}}])
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(TRACE) + "\n\n" + json.dumps(bad) + "\n")
    with pytest.raises(InputError) as info:
        read_records(path, TraceRecord)
    assert info.value.message.startswith(f"{path}:3: trace[0].action.arguments")


def test_skip_invalid_counts_instead_of_failing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(TRACE) + "\n{broken\n" + json.dumps(dict(TRACE, id="a")) + "\n")
    report = ReadReport(path)
    records = read_records(path, TraceRecord, skip_invalid=True, report=report)
    assert [r.id for r in records] == ["a"]
    assert len(report.skipped) == 2 and "duplicate id" in report.skipped[1]
    assert "skipped 2 invalid line(s)" in capsys.readouterr().err


def test_write_is_atomic_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")

    def items():
        yield {"id": 1}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_jsonl(out, items())
    assert out.read_text() == "previous\n"
    assert list(tmp_path.iterdir()) == [out], "no temporary file is left behind"


def test_atomic_path_replaces_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "x.txt"
    with atomic_path(out) as tmp:
        tmp.write_text("new")
        assert not out.exists()
    assert out.read_text() == "new"
