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


def test_written_files_have_the_umask_mode_not_mkstemps_0600(tmp_path: Path) -> None:
    import os

    old = os.umask(0o027)
    try:
        from specdecode import outputs

        outputs._umask = None  # read the umask again
        write_jsonl(tmp_path / "a.jsonl", [TRACE])
        assert (tmp_path / "a.jsonl").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
        outputs._umask = None
    write_jsonl(tmp_path / "b.jsonl", [TRACE])
    assert (tmp_path / "b.jsonl").stat().st_mode & 0o777 == 0o666 & ~old


def test_non_finite_floats_are_written_as_null_never_bare_nan(tmp_path: Path) -> None:
    from specdecode.jsonl import write_json

    write_jsonl(tmp_path / "a.jsonl", [{"x": float("nan"), "y": [float("inf"), 1.5]}])
    assert json.loads((tmp_path / "a.jsonl").read_text()) == {"x": None, "y": [None, 1.5]}
    write_json(tmp_path / "b.json", {"bound": float("inf")})
    assert "Infinity" not in (tmp_path / "b.json").read_text()


def test_a_registered_secret_is_redacted_from_every_write(tmp_path: Path) -> None:
    from specdecode.outputs import redact, register_secret

    secret = "sk-test-REDACT-0123456789abcdef"
    register_secret(secret)
    write_jsonl(tmp_path / "a.jsonl", [{"raw": f"the key is {secret}", "prefix": secret[:12]}])
    text = (tmp_path / "a.jsonl").read_text()
    assert secret not in text and secret[:12] not in text and "***" in text
    assert redact("short") == "short"


@pytest.mark.parametrize(
    ("line", "field", "problem"),
    [
        ('{"a": NaN}', "a", "NaN is not a finite number"),
        ('{"a": [1, {"b": -Infinity}]}', "a[1].b", "-Infinity is not a finite number"),
        ('{"a": 1e400}', "a", "overflows"),
        ('{"a": ' + "7" * 5000 + "}", "a", "5000 digits"),
        ('{"a": 18446744073709551616}', "a", "out of range"),
        ('{"a": "\\udc00"}', "a", "lone surrogate"),
        ('{"a\\ud800": 1}', "a\\ud800", "lone surrogate"),
        ('{"a": ' + "[" * 65 + "]" * 65 + "}", "a[0]", "nested deeper than 64"),
    ],
)
def test_bounded_reader_names_file_line_and_field(
    tmp_path: Path, line: str, field: str, problem: str
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"ok": 1}\n' + line + "\n", encoding="utf-8")
    from specdecode.jsonl import iter_json_lines

    with pytest.raises(InputError) as info:
        list(iter_json_lines(path))
    assert info.value.line == 2
    assert info.value.message.startswith(f"{path}:2: {field}") and problem in info.value.message


def test_valid_surrogate_pairs_and_64_levels_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"a": "\\ud83d\\ude00", "b": ' + "[" * 63 + "]" * 63 + "}\n", encoding="utf-8")
    from specdecode.jsonl import iter_json_lines

    ((_, row),) = list(iter_json_lines(path))
    assert row["a"] == "\U0001f600"
