"""``specdecode traces import`` / ``export``: OpenAI-style agent logs ↔ traces, step timing,
read-only overlays, and malformed logs reported as ``path:line: field: problem`` with exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from specdecode.data import synthesize
from specdecode.jsonl import read_records, write_jsonl
from specdecode.records import TraceRecord
from specdecode.registry import load_registry


def run_main(argv: list[str | Path], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The real entry point in-process (fast): exit code and stderr."""
    from specdecode.cli import main

    old = sys.argv
    sys.argv = ["specdecode", *map(str, argv)]
    try:
        with pytest.raises(SystemExit) as info:
            main()
    finally:
        sys.argv = old
    return int(info.value.code or 0), capsys.readouterr().err


def write_log(path: Path, lines: list[dict | str]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def test_round_trip_traces_to_log_and_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    originals = synthesize(20, seed=1, registry="tools17")
    for record in originals[:5]:  # some traces carry timing, as imported logs would
        for number, step in enumerate(record.trace):
            step.actor_seconds = 1.5 + number  # type: ignore[attr-defined]
            if step.observation:  # a tool time needs a tool result to carry it
                step.tool_seconds = 0.25 * number  # type: ignore[attr-defined]
    write_jsonl(tmp_path / "traces.jsonl", originals)
    code, err = run_main(
        [
            "traces",
            "export",
            tmp_path / "traces.jsonl",
            "--out",
            tmp_path / "log.jsonl",
            "--registry",
            "tools17",
        ],
        capsys,
    )
    assert code == 0, err
    log_line = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])
    call = log_line["messages"][1]["tool_calls"][0]
    assert call["type"] == "function" and isinstance(
        call["function"]["arguments"], str
    )  # the OpenAI wire form
    code, err = run_main(
        [
            "traces", "import", tmp_path / "log.jsonl", "--out", tmp_path / "back.jsonl",
            "--registry_out", tmp_path / "tools.yaml",
        ],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    back = read_records(tmp_path / "back.jsonl", TraceRecord)
    registry = load_registry("tools17")
    assert [r.id for r in back] == [r.id for r in originals]
    for a, b in zip(originals, back):
        assert b.question == a.question and b.level == a.level and b.final_answer == a.final_answer
        assert [s.action.model_dump() for s in b.trace] == [s.action.model_dump() for s in a.trace]
        assert [s.observation for s in b.trace] == [s.observation for s in a.trace]
        assert [s.thought for s in b.trace] == [s.thought for s in a.trace]
        assert [s.model_extra for s in b.trace] == [s.model_extra for s in a.trace]  # timing survives
        assert b.tools == (a.tools or registry.names)
    tools = load_registry(tmp_path / "tools.yaml")
    offered = {name for r in originals for name in (r.tools or registry.names)}
    assert set(tools.names) == offered and len(offered) > 4
    for tool in tools.tools:
        same = registry.get(tool.name)
        assert same is not None and (tool.description, tool.parameters) == (same.description, same.parameters)
    assert not any(t.read_only for t in tools.tools)  # read_only is the user's call: default none


def test_timestamps_and_durations_become_step_timing(tmp_path: Path) -> None:
    from specdecode.teacher.logs import import_logs

    line = {
        "id": "agent-run-7",
        "tools": [
            {
                "type": "function",
                "function": {"name": "search", "description": "Web search.", "parameters": {}},
            },
            {"name": "fetch", "description": "Fetch a URL."},
        ],
        "messages": [
            {"role": "system", "content": "You are an agent."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Who won?"}],
                "timestamp": "2025-03-01T10:00:00Z",
            },
            {
                "role": "assistant",
                "content": "Search first, and fetch the page.",
                "timestamp": "2025-03-01T10:00:04.5Z",
                "tool_calls": [
                    {
                        "id": "a",
                        "type": "function",
                        "function": {"name": "search", "arguments": {"query": "winner"}},
                    },
                    {
                        "id": "b",
                        "type": "function",
                        "function": {"name": "fetch", "arguments": '{"url": "u"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "b", "content": "page", "timestamp": "2025-03-01T10:00:06Z"},
            {"role": "tool", "tool_call_id": "a", "content": "", "duration_ms": 800},
            {"role": "assistant", "content": "Thinking...", "created": 1740823210.0},
            {
                "role": "assistant",
                "content": None,
                "duration_s": 2.0,
                "tool_calls": [{"type": "function", "function": {"name": "calc", "arguments": "{}"}}],
            },
            {"role": "tool", "content": "4"},
            {"role": "assistant", "content": "Alice won."},
        ],
    }
    result = import_logs(write_log(tmp_path / "log.jsonl", [line]))
    (trace,) = result.traces
    assert trace.question == "Who won?" and trace.final_answer == "Alice won."
    s1, s2, s3 = trace.trace
    assert (s1.action.tool_name, s1.thought, s1.observation) == (
        "search",
        "Search first, and fetch the page.",
        "",
    )
    assert (s2.action.arguments, s2.thought, s2.observation) == ({"url": "u"}, "", "page")
    assert s1.model_extra == {"actor_seconds": 4.5, "tool_seconds": 0.8}  # duration_ms wins over timestamps
    assert s2.model_extra == {
        "actor_seconds": 0.0,
        "tool_seconds": 1.5,
    }  # a parallel call: no extra think time
    assert s3.model_extra == {"actor_seconds": 2.0}  # no timestamps on the tool result: no tool time
    assert (s3.thought, s3.observation) == ("Thinking...", "4")
    assert result.timed_steps == 3 and trace.tools == ["search", "fetch"]
    assert [t.name for t in result.tools] == ["search", "fetch", "calc"]  # calc was called, never declared
    assert result.tools[2].parameters == {"type": "object"}


def test_read_only_from_overlay_and_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    traces = synthesize(6, seed=0, registry="tools4")
    write_jsonl(tmp_path / "t.jsonl", traces)
    assert (
        run_main(
            ["traces", "export", tmp_path / "t.jsonl", "-o", tmp_path / "log.jsonl", "--registry", "tools4"],
            capsys,
        )[0]
        == 0
    )
    overlays = {
        "map.yaml": {"search": True, "calculator": False},
        "list.yaml": ["search"],
        "registry.yaml": [{"name": "search", "read_only": True}, {"name": "wikipedia", "read_only": False}],
    }
    for name, data in overlays.items():
        (tmp_path / name).write_text(yaml.safe_dump(data))
        code, err = run_main(
            [
                "traces", "import", tmp_path / "log.jsonl", "--out", tmp_path / "o.jsonl",
                "--registry-out", tmp_path / "r.yaml", "--read-only", tmp_path / name,
                "--read-only-tool", "wikipedia", "--read_only_tool", "nonexistent",
            ],
            capsys,
        )  # fmt: skip
        assert code == 0, err
        assert "read-only tools not in the logs: nonexistent" in err
        marked = {t.name for t in load_registry(tmp_path / "r.yaml").tools if t.read_only}
        assert marked == {"search", "wikipedia"}, name


MALFORMED = [
    ('{"messages": [{"role": "user", "content": "q"}]}\n{"messages": [', 2, "invalid JSON"),
    ('{"id": "x", "conversation": []}', 1, "messages: missing or not a list"),
    (
        '{"messages": [{"role": "user", "content": "q"}, {"role": "robot", "content": "x"}]}',
        1,
        "messages[1].role:",
    ),
    ('{"messages": [{"role": "assistant", "content": "hi"}]}', 1, "messages: no user message (the question)"),
    (
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": '
        '[{"type": "function", "function": {"name": "s", "arguments": "{oops"}}]}]}',
        1,
        "messages[1].tool_calls[0].function.arguments: arguments string is not valid JSON",
    ),
    (
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{"id": "a", '
        '"type": "function", "function": {"name": "s", "arguments": "{}"}}]}, '
        '{"role": "tool", "tool_call_id": "zz", "content": "r"}]}',
        1,
        "messages[2].tool_call_id: no earlier tool call with id 'zz'",
    ),
    (
        '{"messages": [{"role": "user", "content": "q", "timestamp": "yesterday"}]}',
        1,
        "messages[0].timestamp: not an ISO 8601 time or Unix seconds",
    ),
    (
        '{"messages": [{"role": "user", "content": "q", "timestamp": 20}, {"role": "assistant", '
        '"content": "a", "timestamp": 10}]}',
        1,
        "messages[1].timestamp: earlier than the message before it",
    ),
    ('{"messages": [{"role": "user", "content": "q"}], "tools": {"search": {}}}', 1, "tools: must be a list"),
    (
        '{"messages": [{"role": "user", "content": "q"}], "tools": [{"type": "function", "function": {}}]}',
        1,
        "tools[0].function.name: missing or not a string",
    ),
    (
        '{"id": "a", "messages": [{"role": "user", "content": "q"}]}\n'
        '{"id": "a", "messages": [{"role": "user", "content": "q"}]}',
        2,
        "id: duplicate id 'a' (first on line 1)",
    ),
    (
        '{"messages": [{"role": "user", "content": "q", "duration_s": -1}]}',
        1,
        "messages[0].duration_s: must be",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), MALFORMED)
def test_malformed_logs_name_path_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, message: str
) -> None:
    log = tmp_path / "agent.jsonl"
    log.write_text(text + "\n", encoding="utf-8")
    code, err = run_main(["traces", "import", log, "--out", tmp_path / "o.jsonl"], capsys)
    assert code == 2
    assert f"{log}:{line}: {message}" in " ".join(err.split()), err
    assert "Traceback" not in err
    assert not (tmp_path / "o.jsonl").exists()


def test_missing_log_and_bad_overlay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(["traces", "import", tmp_path / "none.jsonl", "--out", tmp_path / "o.jsonl"], capsys)
    assert code == 2 and "none.jsonl: file not found" in err
    write_log(tmp_path / "log.jsonl", [{"messages": [{"role": "user", "content": "q"}]}])
    (tmp_path / "ro.yaml").write_text("search: maybe\n")
    code, err = run_main(
        [
            "traces",
            "import",
            tmp_path / "log.jsonl",
            "--out",
            tmp_path / "o.jsonl",
            "--read-only",
            tmp_path / "ro.yaml",
        ],
        capsys,
    )
    assert code == 2 and "ro.yaml: search: expected true or false" in err
