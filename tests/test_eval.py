"""eval and compare end to end: OpenAI-compatible backend over loopback HTTP, hf resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import run_cli
from fake_openai import FakeOpenAI

TIMING = ("latency", "tokens_per_s", "first_token_latency", "batch_size")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_openai_backend_compare_over_loopback(synth_split: Path, tmp_path: Path) -> None:
    secret = "sk-test-secret-123"
    out = tmp_path / "cmp.jsonl"
    with FakeOpenAI(secret) as server:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "specdecode",
                "compare",
                "--backend",
                "openai",
                "--base-url",
                server.url,
                "--base_model",
                "base",
                "--lora_dir",
                "speculator",
                "--test_file",
                str(synth_split / "test.jsonl"),
                "--output_file",
                str(out),
                "--api-key-env",
                "MY_KEY",
                "--limit",
                "20",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "MY_KEY": secret},
            timeout=300,
        )
    assert proc.returncode == 0, proc.stderr
    assert {r["auth"] for r in server.requests} == {f"Bearer {secret}"}
    assert {r["body"]["model"] for r in server.requests} == {"base", "speculator"}
    assert all(r["body"]["temperature"] == 0 for r in server.requests)
    rows = _rows(out)
    assert len(rows) == 20
    assert all(
        r["lora_parse_format"] == "tool_calls" and r["lora_pred_calls"][0]["tool_name"] == "search"
        for r in rows
    )
    assert all(not r["base_pred_calls"] for r in rows)
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    n_search = sum(r["gold_tool"] == "search" for r in rows)
    assert summary["paired"]["first_call_name"]["wins"] == n_search
    assert summary["paired"]["first_call_name"]["losses"] == 0
    for text in (out.read_text(), out.with_suffix(".summary.json").read_text(), proc.stdout, proc.stderr):
        assert secret not in text


def test_openai_backend_bad_key_is_reported(synth_split: Path, tmp_path: Path) -> None:
    with FakeOpenAI("right") as server:
        proc = run_cli(
            "eval",
            "--backend",
            "openai",
            "--base-url",
            server.url,
            "--base_model",
            "base",
            "--test_file",
            synth_split / "test.jsonl",
            "--output_file",
            tmp_path / "o.jsonl",
            "--limit",
            "2",
        )
    assert proc.returncode != 0


def test_hf_eval_resumes_to_the_same_file(tiny_qwen3: Path, synth_split: Path, tmp_path: Path) -> None:
    args = [
        "eval",
        "--base_model",
        str(tiny_qwen3),
        "--test_file",
        str(synth_split / "test.jsonl"),
        "--limit",
        "12",
        "--max_new_tokens",
        "8",
        "--batch_size",
        "3",
    ]
    full = tmp_path / "full.jsonl"
    run_cli(*args, "--output_file", full, check=True)
    part = tmp_path / "part.jsonl"
    lines = full.read_text().splitlines()
    torn = (lines[5][: len(lines[5]) // 2] + "é").encode()[:-1]  # killed mid-write, inside a character
    part.write_bytes(("\n".join(lines[:5]) + "\n").encode() + torn)
    proc = run_cli(*args, "--output_file", part, check=True)
    assert "resuming: 5 of 12" in proc.stderr
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert strip(_rows(part)) == strip(_rows(full))
    summary = json.loads(full.with_suffix(".summary.json").read_text())
    assert summary["n"] == 12 and set(summary["metrics"]) >= {"first_call_name", "name_f1", "args_match"}
    assert 0 <= summary["metrics"]["parse_ok"]["mean"] <= 1


def test_hf_eval_in_bfloat16_and_a_bad_dtype(tiny_qwen3: Path, synth_split: Path, tmp_path: Path) -> None:
    args = ["eval", "--base_model", str(tiny_qwen3), "--test_file", str(synth_split / "test.jsonl")]
    out = tmp_path / "bf16.jsonl"
    run_cli(
        *args, "--output_file", out, "--limit", "4", "--max_new_tokens", "6", "--dtype", "bf16", check=True
    )
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["dtype"] == "bfloat16" and summary["n"] == 4
    assert all(0 < r["completion_tokens"] <= 6 for r in _rows(out))
    bad = run_cli(*args, "--output_file", tmp_path / "bad.jsonl", "--dtype", "float8")
    assert bad.returncode == 2
    assert "--dtype 'float8'" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad.jsonl").exists()
