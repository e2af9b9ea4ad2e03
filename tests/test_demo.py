"""The demo runs every stage end to end, writes its report, and a rerun reuses finished stages."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli


def test_demo_runs_every_stage_and_reuses_them(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    # the timeout catches a hang, not a slow machine (385 s in CI; shared 2-core machines vary 1.5x)
    first = run_cli("demo", "--out", out, "--n", "24", "--max-steps", "4", check=True, timeout=1800)
    summary = (out / "summary.md").read_text()
    for section in ("## Data", "## Training", "## Base vs. LoRA (next-call", "## Base vs. LoRA (trace"):
        assert section in summary, section
    assert "## Speculation" in summary and "## Live agent" in summary
    for predictor in (
        "frequency",
        "pattern",
        "pattern-nocopy",
        "bigram-memory",
        "pattern-v1",
        "base",
        "lora",
        "hybrid",
        "verify",
    ):
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
    # verify's validation gate (its model's scores against the table's ranking) is reported
    assert "against the table's own ranking (hit@1)" in (out / "report.md").read_text()
    # A rerun with the same settings reuses every stage and only rewrites the report.
    stages = {p.name: p.stat().st_mtime_ns for p in (out / "stages").iterdir()}
    again = run_cli("demo", "--out", out, "--n", "24", "--max-steps", "4", check=True, timeout=600)
    assert again.stderr.count("reused") >= len(stages)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "stages").iterdir()} == stages


def test_demo_training_replaces_an_adapter_left_by_other_settings(tmp_path: Path) -> None:
    """A changed train stage starts afresh: it must not resume from the checkpoints of a run with
    other settings (that run's steps would count as done and its weights be kept)."""
    from specdecode.demo import data_stage, train_stage

    out = tmp_path / "demo"
    data_stage(out, 24, 0, "tools4")
    train_stage(out, 0, 2, "conversation")
    first = (out / "adapter" / "adapter_model.safetensors").read_bytes()
    result = train_stage(out, 1, 2, "conversation")  # another seed: other settings
    summary = json.loads((out / "adapter" / "training_summary.json").read_text())
    assert summary["resumed_from"] is None and result["steps"] == 2
    assert (out / "adapter" / "adapter_model.safetensors").read_bytes() != first


def test_a_stage_whose_output_is_gone_runs_again(tmp_path: Path) -> None:
    """A stored stage result is reused only while the files it names are there."""
    from specdecode.demo import stage

    runs: list[int] = []
    output = tmp_path / "adapter.bin"

    def run() -> dict:
        runs.append(1)
        output.write_bytes(b"weights")
        return {}

    for _ in range(2):
        stage(tmp_path, "train", {"a": 1}, run, outputs=(output,))
    assert len(runs) == 1
    output.unlink()  # e.g. a user deleted the adapter, or another run replaced its folder
    stage(tmp_path, "train", {"a": 1}, run, outputs=(output,))
    assert len(runs) == 2 and output.is_file()
