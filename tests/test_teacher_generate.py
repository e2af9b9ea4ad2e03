"""``specdecode traces generate`` as a real subprocess against loopback Gemini / OpenAI servers:
valid, invalid, repaired and unparseable replies; SIGKILL mid-run and resume; a cached rerun
with zero calls; 100 items under 30 % 429/500 and 5 % hangs within the call budget; GAIA input;
and no API key in any output."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_llm_server import FakeLLMServer, FakeRequest
from specdecode.records import TraceRecord

KEY = "sk-fake-GENERATE-9f8e7d6c5b4a3210"
FAST = ["--backoff", "0.002", "--max-backoff", "0.02", "--timeout", "2", "--no-progress"]


def teacher_reply(request: FakeRequest) -> str:
    """A deterministic teacher whose behaviour the question text selects."""
    question = request.user.removeprefix("Question: ")
    trace = [
        {"thought": "Look it up.", "action": {"tool_name": "search", "arguments": {"query": question}}},
        {"thought": "Compute.", "action": {"tool_name": "calculator", "arguments": {"expression": "6*7"}}},
    ]
    if "[unknown]" in question:
        trace[1]["action"] = {"tool_name": "teleport", "arguments": {}}
    if "[badargs]" in question:
        trace[0]["action"]["arguments"] = {"q": 5}
    if "[garbage]" in question:
        return "I am sorry, I cannot produce JSON today."
    if "[leak]" in question:  # a 200 reply that echoes the caller's key
        return f"Your key is {KEY}; I cannot produce JSON today."
    reply = json.dumps({"trace": trace, "final_answer": 42, "extra_key": "ignored"})
    if "[fenced]" in question:
        return "Here you go:\n```json\n" + reply[:-1] + ",}\n```"
    return reply


def env_for(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GEMINI_API_KEY=KEY, OPENAI_API_KEY=KEY, SPECDECODE_LLM_CACHE=str(tmp_path / "default-cache.sqlite")
    )
    env.pop("GOOGLE_API_KEY", None)
    return env


def cli(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "specdecode", "traces", "generate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env_for(tmp_path),
    )


def write_questions(path: Path, texts: list[str]) -> list[str]:
    ids = [f"q{i:03d}" for i in range(len(texts))]
    with open(path, "w", encoding="utf-8") as fh:
        for i, (qid, text) in enumerate(zip(ids, texts)):
            fh.write(
                json.dumps({"id": qid, "question": text, "level": 1 + i % 3, "final_answer": "42"}) + "\n"
            )
    return ids


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_no_key(tmp_path: Path, *outputs: str) -> None:
    """The acceptance grep: the key is in no file written and in no stdout/stderr."""
    for text in outputs:
        assert KEY not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def question_of(request: FakeRequest) -> str:
    return request.user.removeprefix("Question: ")


def test_generate_valid_invalid_repaired_and_failed(tmp_path: Path) -> None:
    texts = [
        "Plain one?",
        "Uses [unknown] tool?",
        "Has [badargs]?",
        "Wants [fenced] reply?",
        "Returns [garbage]?",
    ]
    ids = write_questions(tmp_path / "q.jsonl", texts)
    out = tmp_path / "traces.jsonl"
    with FakeLLMServer(KEY, teacher_reply) as server:
        proc = cli(
            tmp_path, tmp_path / "q.jsonl", "--provider", "openai", "--model", "teacher",
            "--base_url", server.openai_url, "--out", out, "--cache", tmp_path / "c.sqlite", *FAST,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr  # one item failed: the exit status says so
        request = server.requests[0]
    traces = {r["id"]: r for r in rows(out)}
    assert list(traces) == ids[:4]  # input order; the unparseable one is an error row
    for row in traces.values():
        TraceRecord.model_validate(row)  # the file is a trace file downstream tools can read
        assert row["final_answer"] == "42" and row["gold_answer"] == "42" and "extra_key" not in row
        assert row["teacher"] == {"provider": "openai", "model": "teacher"}
    assert traces["q000"]["valid"] and traces["q000"]["issues"] == []
    assert traces["q000"]["trace"][0]["action"] == {
        "tool_name": "search",
        "arguments": {"query": "Plain one?"},
    }
    assert not traces["q001"]["valid"] and traces["q001"]["issues"] == ["step 2: unknown tool 'teleport'"]
    assert not traces["q002"]["valid"]
    assert any("'query' is a required property" in i for i in traces["q002"]["issues"])
    assert traces["q003"]["valid"] and traces["q003"]["repairs"] == ["code_fence", "trailing_commas"]
    (error,) = rows(tmp_path / "traces.errors.jsonl")
    assert error["id"] == "q004" and error["error_kind"] == "parse"
    assert error["raw"] == "I am sorry, I cannot produce JSON today."
    summary = json.loads((tmp_path / "traces.summary.json").read_text())
    assert (summary["valid"], summary["invalid"], summary["failed"]) == (2, 2, 1)
    assert summary["issues"] == {"unknown tool 'teleport'": 1, "bad arguments: search": 1}
    assert summary["client"]["calls"] == 5 and summary["client"]["cache"]["misses"] == 5
    # The prompt lists the registry's tools (render_tools) and the request carries the schema.
    assert '"name": "calculator"' in request.system and request.user.startswith("Question: ")
    schema = request.body["response_format"]["json_schema"]["schema"]
    action = schema["properties"]["trace"]["items"]["properties"]["action"]
    assert action["properties"]["tool_name"]["enum"] == ["search", "wikipedia", "calculator", "final_answer"]
    assert "2 valid" in proc.stderr and "1 failed" in proc.stderr and "✓" in proc.stderr
    assert_no_key(tmp_path, proc.stdout, proc.stderr)


def test_every_item_failed_exits_1_without_a_tick(tmp_path: Path) -> None:
    write_questions(tmp_path / "q.jsonl", ["Returns [garbage]?", "Also [garbage]?"])
    out = tmp_path / "traces.jsonl"
    with FakeLLMServer(KEY, teacher_reply) as server:
        proc = cli(
            tmp_path, tmp_path / "q.jsonl", "--provider", "openai", "--model", "teacher",
            "--base-url", server.openai_url, "--out", out, "--no-cache", *FAST,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "✓" not in proc.stderr and "2 failed" in proc.stderr and "Traceback" not in proc.stderr
    assert rows(out) == [] and len(rows(tmp_path / "traces.errors.jsonl")) == 2


def test_a_reply_echoing_the_key_is_stored_redacted(tmp_path: Path) -> None:
    """A 200 reply whose text holds the API key: the errors file's ``raw`` field (and the cache,
    and every other file) has it redacted."""
    write_questions(tmp_path / "q.jsonl", ["Plain one?", "Please [leak]?"])
    out = tmp_path / "traces.jsonl"
    with FakeLLMServer(KEY, teacher_reply) as server:
        proc = cli(
            tmp_path, tmp_path / "q.jsonl", "--provider", "openai", "--model", "teacher",
            "--base-url", server.openai_url, "--out", out, "--cache", tmp_path / "c.sqlite", *FAST,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    (error,) = rows(tmp_path / "traces.errors.jsonl")
    assert error["raw"] == "Your key is ***; I cannot produce JSON today."
    assert_no_key(tmp_path, proc.stdout, proc.stderr)


def test_kill_resume_then_cached_rerun_makes_zero_calls(tmp_path: Path) -> None:
    ids = write_questions(tmp_path / "q.jsonl", [f"Question number {i}?" for i in range(24)])
    id_of = {f"Question number {i}?": qid for i, qid in enumerate(ids)}
    out, cache = tmp_path / "traces.jsonl", tmp_path / "cache.sqlite"
    with FakeLLMServer(KEY, teacher_reply, delay=0.12) as server:
        args = [
            sys.executable, "-m", "specdecode", "traces", "generate", str(tmp_path / "q.jsonl"),
            "--provider", "openai", "--model", "teacher", "--base-url", server.openai_url,
            "--concurrency", "2", "--cache", str(cache), "--out", str(out), *FAST,
        ]  # fmt: skip
        proc = subprocess.Popen(
            args, env=env_for(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.time() + 60
        while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 6):
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        killed_out, killed_err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        finished = set()
        for line in out.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a torn last line
                finished.add(json.loads(line)["id"])
        assert 6 <= len(finished) < 24
        before = server.settle()  # requests the killed client had in flight land before the rerun

        second = subprocess.run(args, env=env_for(tmp_path), capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        asked_again = [id_of[question_of(r)] for r in server.requests[before:]]
        assert not set(asked_again) & finished  # finished items are not repeated
        assert len(asked_again) == len(set(asked_again)) <= 24 - len(finished)
        assert "resuming" in second.stderr
        first_rows = rows(out)
        assert [r["id"] for r in first_rows] == ids  # complete, no duplicates, input order

        # A full rerun from scratch answers everything from the cache: zero calls (the budget of 0 proves it).
        out.unlink()
        third = subprocess.run(
            [*args, "--max-calls", "0"], env=env_for(tmp_path), capture_output=True, text=True, timeout=120
        )
        assert third.returncode == 0, third.stderr
        assert server.calls == before + len(asked_again)
    summary = json.loads((tmp_path / "traces.summary.json").read_text())
    assert summary["client"]["calls"] == 0 and summary["client"]["cache"]["hits"] == 24
    assert summary["failed"] == 0 and rows(out) == first_rows
    assert "cache 24 hits / 0 misses" in third.stderr
    assert_no_key(tmp_path, killed_out, killed_err, second.stdout, second.stderr, third.stdout, third.stderr)


def test_chaos_100_items_finish_within_budget(tmp_path: Path) -> None:
    """30 % of requests fail with 429/500, 5 % hang past the timeout; every item ends done or error."""
    ids = write_questions(tmp_path / "q.jsonl", [f"Chaos question {i}?" for i in range(100)])
    out, budget = tmp_path / "traces.jsonl", 140
    with FakeLLMServer(
        KEY, teacher_reply, fail_rate=0.30, hang_rate=0.05, hang_seconds=1.5, seed=3
    ) as server:
        proc = cli(
            tmp_path, tmp_path / "q.jsonl", "--provider", "gemini", "--model", "gemini-teacher",
            "--base-url", server.gemini_url, "--concurrency", "8", "--max-calls", str(budget),
            "--max-attempts", "4", "--out", out, "--no-cache", *FAST, "--timeout", "0.25",
        )  # fmt: skip
        calls = server.calls
        faults = {r.fault for r in server.requests}
    assert calls <= budget
    assert {"429", "500", "hang", None} <= faults
    done = [r["id"] for r in rows(out)]
    errors = rows(tmp_path / "traces.errors.jsonl") if (tmp_path / "traces.errors.jsonl").exists() else []
    assert proc.returncode == (1 if errors else 0), proc.stderr
    assert sorted(done + [e["id"] for e in errors]) == ids  # each exactly once: done or error
    assert done == [i for i in ids if i in set(done)]
    assert {e["error_kind"] for e in errors} <= {"budget", "transient"}
    assert all(e["error"] for e in errors)
    summary = json.loads((tmp_path / "traces.summary.json").read_text())
    assert summary["client"]["calls"] == calls and summary["traces"] + summary["failed"] == 100
    assert {"429", "500", "timeout"} <= set(summary["client"]["failed_attempts"])
    assert summary["client"]["cache"]["enabled"] is False
    assert_no_key(tmp_path, proc.stdout, proc.stderr)


def test_generate_from_a_gaia_folder_with_gemini(tmp_path: Path, gaia_root: Path) -> None:
    out = tmp_path / "gaia-traces.jsonl"
    with FakeLLMServer(KEY, teacher_reply) as server:
        proc = cli(
            tmp_path, gaia_root, "--provider", "gemini", "--model", "gemini-2.5-pro", "--base-url",
            server.gemini_url, "--registry", "tools17", "--out", out, "--cache", tmp_path / "c.sqlite", *FAST,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        request = server.requests[0]
    got = rows(out)
    assert len(got) == 12 and got[0]["id"] == "task-00" and got[0]["level"] == 1
    # tools17 has ``search`` but calls its calculator ``calculate``: the teacher's slip is flagged.
    assert all(r["issues"] == ["step 2: unknown tool 'calculator'"] and not r["valid"] for r in got)
    assert request.api == "gemini" and request.model == "gemini-2.5-pro"
    assert "wiki.get_page" in request.system
    assert request.headers.get("x-goog-api-key") == KEY  # sent as a header, never in the URL
    assert_no_key(tmp_path, proc.stdout, proc.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--provider", "claude", "--model", "m"], "--provider 'claude'"),
        (["--provider", "openai", "--model", "m", "--api-key-env", "NOT_SET_ANYWHERE"], "NOT_SET_ANYWHERE"),
        (["--provider", "openai", "--model", "m", "--json-mode", "yaml"], "--json-mode 'yaml'"),
        (["--provider", "openai", "--model", "m", "--registry", "nope.yaml"], "no such registry file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    write_questions(tmp_path / "q.jsonl", ["A?"])
    proc = cli(tmp_path, tmp_path / "q.jsonl", "--out", tmp_path / "o.jsonl", *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_malformed_questions_name_path_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": "a", "question": "ok?"}\n{"id": "b"}\n', encoding="utf-8")
    proc = cli(tmp_path, bad, "--provider", "openai", "--model", "m", "--out", tmp_path / "o.jsonl")
    assert proc.returncode == 2
    assert f"{bad}:2: missing field 'question'" in proc.stderr


def test_rerun_on_fewer_questions_keeps_other_paid_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from specdecode.registry import load_registry
    from specdecode.teacher import ClientConfig, LLMClient
    from specdecode.teacher.generate import TraceGenerator, generate_traces, load_questions

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    write_questions(tmp_path / "all.jsonl", ["One?", "Two?", "Three?"])
    out = tmp_path / "t.jsonl"
    with FakeLLMServer(KEY, teacher_reply) as server:
        client = LLMClient(ClientConfig("openai", "t", base_url=server.openai_url, cache=False))
        generator = TraceGenerator(client, load_registry("tools4"))
        generate_traces(load_questions(tmp_path / "all.jsonl"), generator, out, show_progress=False)
        (tmp_path / "some.jsonl").write_text((tmp_path / "all.jsonl").read_text().splitlines()[1] + "\n")
        summary = generate_traces(
            load_questions(tmp_path / "some.jsonl"), generator, out, show_progress=False
        )
        assert server.calls == 3
    assert [r["id"] for r in rows(out)] == ["q001", "q000", "q002"]  # the input's first, then the others
    assert summary["traces"] == 1 and summary["resumed"] == 1


def test_a_registry_with_a_broken_schema_fails_before_any_call(tmp_path: Path) -> None:
    registry = tmp_path / "reg.yaml"
    registry.write_text("- name: s\n  description: d\n  parameters: {type: objekt}\n")
    write_questions(tmp_path / "q.jsonl", ["A?"])
    proc = cli(
        tmp_path, tmp_path / "q.jsonl", "--provider", "openai", "--model", "m", "--base-url",
        "http://127.0.0.1:9/v1", "--registry", registry, "--out", tmp_path / "o.jsonl",
    )  # fmt: skip
    assert proc.returncode == 2 and "'objekt'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_rerun_with_other_teacher_settings_is_refused_unless_overwrite(tmp_path: Path) -> None:
    """Rows made by another teacher (or other generation settings) are never mixed in: the rerun
    stops with one line naming the file and what differs; ``overwrite`` replaces them."""
    write_questions(tmp_path / "q.jsonl", ["One?", "Two?"])
    out = tmp_path / "t.jsonl"
    with FakeLLMServer(KEY, teacher_reply) as server:
        base = [tmp_path / "q.jsonl", "--provider", "openai", "--base-url", server.openai_url, "--out", out]
        first = cli(tmp_path, *base, "--model", "teacher", "--no-cache", *FAST)
        assert first.returncode == 0, first.stderr
        kept = out.read_bytes()
        assert rows(out)[0]["teacher_settings"]["model"] == "teacher"
        other = cli(tmp_path, *base, "--model", "teacher-2", "--temperature", "0.7", "--no-cache", *FAST)
        assert other.returncode == 2, other.stderr
        assert len(other.stderr.strip().splitlines()) == 1 and "Traceback" not in other.stderr
        assert str(out) in other.stderr and "--overwrite" in other.stderr
        assert "model 'teacher' → 'teacher-2'" in other.stderr and "temperature 0.0 → 0.7" in other.stderr
        assert out.read_bytes() == kept and server.calls == 2

        again = cli(
            tmp_path,
            *base,
            "--model",
            "teacher-2",
            "--temperature",
            "0.7",
            "--no-cache",
            "--overwrite",
            *FAST,
        )
        assert again.returncode == 0, again.stderr
        assert server.calls == 4
    assert {r["teacher"]["model"] for r in rows(out)} == {"teacher-2"}
    assert all(r["teacher_settings"]["temperature"] == 0.7 for r in rows(out))

    # A file from before fingerprints (no teacher_settings) is not trusted either.
    legacy = [{k: v for k, v in r.items() if k != "teacher_settings"} for r in rows(out)]
    out.write_text("".join(json.dumps(r) + "\n" for r in legacy), encoding="utf-8")
    with FakeLLMServer(KEY, teacher_reply) as server:
        base = [tmp_path / "q.jsonl", "--provider", "openai", "--base-url", server.openai_url, "--out", out]
        old = cli(tmp_path, *base, "--model", "teacher-2", "--temperature", "0.7", "--no-cache", *FAST)
        assert old.returncode == 2 and "record no settings" in old.stderr and server.calls == 0
