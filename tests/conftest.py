"""Shared fixtures: the CLI run as a real subprocess, and a GAIA-format fixture on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def run_cli(
    *args: str | Path, cwd: Path | None = None, check: bool = False, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m specdecode ARGS`` in a subprocess and capture its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "specdecode", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


# GAIA-*format* rows written by this project (no GAIA text).
GAIA_ROWS = [
    {
        "task_id": f"task-{i:02d}",
        "Question": f"Fixture question number {i}?",
        "Level": str(1 + i % 3),
        "Final answer": str(i * 7),
        "file_name": "sheet.xlsx" if i == 4 else "",
        "Annotator Metadata": {
            "Steps": f'1. Searched "fixture topic {i}" on Google.\n2. Opened the Wikipedia page.\n'
            "3. Noted the value.\n4. Used a calculator to multiply it by 7.",
            "Number of steps": "4",
            "How long did this take?": "5 minutes",
            "Tools": "1. Web browser\n2. Search engine\n3. Calculator\n4. Telepathy",
            "Number of tools": "4",
        },
    }
    for i in range(12)
]


@pytest.fixture()
def gaia_root(tmp_path: Path) -> Path:
    """A GAIA snapshot layout with metadata.jsonl under 2023/validation/."""
    folder = tmp_path / "gaia" / "2023" / "validation"
    folder.mkdir(parents=True)
    with open(folder / "metadata.jsonl", "w", encoding="utf-8") as fh:
        for row in GAIA_ROWS:
            fh.write(json.dumps(row) + "\n")
    return tmp_path / "gaia"
