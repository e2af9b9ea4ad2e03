"""Every file of the malformed corpus stops the CLI with path:line, exit 2, no traceback,
and leaves no output behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import DATA, run_cli

CORPUS = DATA / "malformed"
CASES = json.loads((CORPUS / "cases.json").read_text())


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 20
    assert {p.stem for p in CORPUS.glob("*.jsonl")} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_file_exits_2_with_location(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    path = CORPUS / f"{name}.jsonl"
    out = tmp_path / "out.jsonl"
    if case["kind"] == "trace":
        proc = run_cli("data", "convert", path, "--out", out, "--form", "steps")
    else:
        proc = run_cli("data", "validate", path, "--kind", "chat")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert f"{path}:{case['line']}:" in lines[0]
    assert case["expect"] in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_skip_invalid_converts_the_good_lines(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    proc = run_cli("data", "convert", CORPUS / "missing_trace.jsonl", "--out", out, "--skip-invalid")
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 invalid line(s)" in proc.stderr
    assert len(out.read_text().splitlines()) == 2  # one good trace of two steps


def test_missing_file_and_bad_registry_are_one_line_errors(tmp_path: Path) -> None:
    proc = run_cli("data", "convert", tmp_path / "nope.jsonl", "--out", tmp_path / "o.jsonl")
    assert proc.returncode == 2 and "nope.jsonl: file not found" in proc.stderr
    bad = tmp_path / "reg.yaml"
    bad.write_text("- name: x\n  description: ''\n")
    proc = run_cli(
        "data", "convert", CORPUS / "missing_trace.jsonl", "--registry", bad, "--out", tmp_path / "o.jsonl"
    )
    assert proc.returncode == 2 and "reg.yaml: tool 0: description" in proc.stderr
    assert "Traceback" not in proc.stderr
