"""The evaluation core's contracts: a rerun only resumes its own rows, gold calls never pass
through text, and the command line is built from one typed configuration."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from conftest import run_cli
from fake_openai import FakeOpenAI
from specdecode.evaluate import run as eval_run
from specdecode.prompts import PromptOptions
from specdecode.records import TraceRecord
from specdecode.registry import load_registry

KEY = "sk-fingerprint-test"


def _eval(server: FakeOpenAI, test_file: Path, out: Path, *extra: str, command: str = "eval"):
    args = [
        command,
        "--backend",
        "openai",
        "--base-url",
        server.url,
        "--base_model",
        "base",
        "--test_file",
        test_file,
        "--output_file",
        out,
        "--api-key-env",
        "FP_KEY",
        "--limit",
        "6",
        *extra,
    ]
    os.environ["FP_KEY"] = KEY
    return run_cli(*args)


def test_rerun_with_other_settings_stops_unless_overwrite(synth_split: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    with FakeOpenAI(KEY) as server:
        first = _eval(server, synth_split / "test.jsonl", out)
        assert first.returncode == 0, first.stderr
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert len({r["run"] for r in rows}) == 1
        calls = len(server.requests)
        # Same settings: a rerun resumes, asks nothing.
        again = _eval(server, synth_split / "test.jsonl", out)
        assert again.returncode == 0 and len(server.requests) == calls
        # Other generation settings into the same file: refused, the file untouched.
        before = out.read_bytes()
        other = _eval(server, synth_split / "test.jsonl", out, "--max-new-tokens", "40")
        assert other.returncode == 2, other.stderr
        assert "other settings" in other.stderr and "Traceback" not in other.stderr
        assert len(other.stderr.strip().splitlines()) == 1
        assert out.read_bytes() == before
        # compare over a file written by eval: the same clean refusal, no KeyError.
        cmp = _eval(server, synth_split / "test.jsonl", out, "--lora-dir", "spec", command="compare")
        assert cmp.returncode == 2 and "other settings" in cmp.stderr and "KeyError" not in cmp.stderr
        # --overwrite replaces the old rows.
        replaced = _eval(server, synth_split / "test.jsonl", out, "--max-new-tokens", "40", "--overwrite")
        assert replaced.returncode == 0, replaced.stderr
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["fingerprint"]["max_new_tokens"] == 40
    assert {json.loads(line)["run"] for line in out.read_text().splitlines()} == {summary["run"]}
    assert summary["latency"]["p95_s"] is not None


def test_yaml_config_and_both_spellings(synth_split: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    with FakeOpenAI(KEY) as server:
        config = tmp_path / "eval.yaml"
        config.write_text(
            f"backend: openai\nbase-url: {server.url}\nbase_model: base\napi_key_env: FP_KEY\n"
            f"test_file: {synth_split / 'test.jsonl'}\noutput_file: {out}\nlimit: 3\n"
        )
        os.environ["FP_KEY"] = KEY
        proc = run_cli("eval", "--config", config, "--batch_size", "2")
        assert proc.returncode == 0, proc.stderr
        assert len(out.read_text().splitlines()) == 3
        bad = tmp_path / "bad.yaml"
        bad.write_text("backend: openai\nbatch_sise: 3\n")
        proc = run_cli("eval", "--config", bad)
        assert proc.returncode == 2 and "unknown option 'batch_sise'" in proc.stderr
        proc = run_cli("eval", "--config", config, "--backend", "tgi")
        assert proc.returncode == 2 and "--backend 'tgi'" in proc.stderr and "Traceback" not in proc.stderr


def test_gold_calls_come_from_the_trace_not_from_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parser change must not change the gold: evaluation takes the trace's calls as they are."""
    record = TraceRecord(
        id="q1",
        question="What is in the template?",
        trace=[
            {"thought": "", "action": {"tool_name": "python", "arguments": {"code": "x = {{'a': 1}}"}}},
            {"thought": "", "action": {"tool_name": "search", "arguments": {"filter": {"year": 2020}}}},
        ],
        final_answer="1",
    )
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"gold-{os.getpid()}.jsonl"
    path.write_text(record.model_dump_json() + "\n")
    monkeypatch.setattr(eval_run, "parse_calls", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    registry = load_registry("tools17")
    for mode in ("next-call", "trace"):
        examples = eval_run.load_examples(path, mode, registry, PromptOptions())
        if mode == "next-call":
            assert [e.gold for e in examples] == [[s.action] for s in record.trace]
            assert [e.step for e in examples] == [0, 1]
        else:
            assert examples[0].gold == [s.action for s in record.trace]
    path.unlink()


def test_constrained_attaches_the_offered_tools_schema(synth_split: Path) -> None:
    registry = load_registry("tools4")
    examples = eval_run.load_examples(
        synth_split / "test.jsonl", "next-call", registry, PromptOptions(), constrained=True
    )
    schema = examples[0].request.response_schema
    names = {json.dumps(s["properties"]["tool_name"]) for s in schema["anyOf"]}
    assert all(any(t in n for n in names) for t in registry.names)


def test_help_fits_80_columns_one_spelling_per_option() -> None:
    for command in (["train"], ["eval"], ["compare"], ["data", "convert"], ["merge"]):
        proc = run_cli(*command, "--help", check=True)
        assert "…" not in proc.stdout, command
        assert not re.search(r"--[a-z]+_[a-z_]+", proc.stdout), command  # the snake spelling is hidden
        assert max(len(line) for line in proc.stdout.splitlines()) <= 80
    assert "--train-file" in run_cli("train", "--help", check=True).stdout
