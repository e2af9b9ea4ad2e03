"""The demo runs end to end and writes its report."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli


def test_demo_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run_cli("demo", "--out", out, "--n", "24", check=True)
    report = (out / "report.md").read_text()
    assert "## Data" in report and "| train |" in report
    for split in ("train", "val", "test"):
        for form in ("plain", "native", "steps"):
            assert (out / "chat" / f"{split}.{form}.jsonl").stat().st_size > 0
