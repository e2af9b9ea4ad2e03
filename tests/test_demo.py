"""The demo runs end to end and writes its report."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli


def test_demo_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run_cli("demo", "--out", out, "--n", "24", "--max-steps", "4", check=True)
    report = (out / "report.md").read_text()
    assert "## Data" in report and "| train |" in report
    assert "## Training" in report and "## Base vs. LoRA" in report and "first_call_name" in report
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "compare.summary.json").is_file()
    for split in ("train", "val", "test"):
        for form in ("plain", "native", "steps"):
            assert (out / "chat" / f"{split}.{form}.jsonl").stat().st_size > 0
