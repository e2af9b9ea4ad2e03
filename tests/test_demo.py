"""The demo runs every stage end to end, writes its report, and a rerun reuses finished stages."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli


def test_demo_runs_every_stage_and_reuses_them(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = run_cli("demo", "--out", out, "--n", "24", "--max-steps", "4", check=True)
    summary = (out / "summary.md").read_text()
    for section in ("## Data", "## Training", "## Base vs. LoRA (next-call", "## Base vs. LoRA (trace"):
        assert section in summary, section
    assert "## Speculation" in summary and "## Live agent" in summary
    for predictor in ("frequency", "pattern", "base", "lora", "hybrid"):
        assert f"| {predictor} |" in summary, predictor
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((out / "compare.summary.json").read_text())["mode"] == "next-call"
    assert json.loads((out / "compare_trace.summary.json").read_text())["mode"] == "trace"
    for split in ("train", "val", "test"):
        for form in ("plain", "native", "steps", "conversation"):
            assert (out / "chat" / f"{split}.{form}.jsonl").stat().st_size > 0
    html = (out / "report.html").read_text()
    assert "report.html" in first.stdout + first.stderr
    assert "<img" in html and "Speculation" in html
    # A rerun with the same settings reuses every stage and only rewrites the report.
    stages = {p.name: p.stat().st_mtime_ns for p in (out / "stages").iterdir()}
    again = run_cli("demo", "--out", out, "--n", "24", "--max-steps", "4", check=True)
    assert again.stderr.count("reused") >= len(stages)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "stages").iterdir()} == stages
