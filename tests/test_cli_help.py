"""Every command explains itself."""

from __future__ import annotations

import pytest

from conftest import run_cli

COMMANDS = [
    [],
    ["gaia"],
    ["data"],
    ["gaia", "load"],
    ["gaia", "split"],
    ["gaia", "levels"],
    ["gaia", "annotator-traces"],
    ["data", "synth"],
    ["data", "convert"],
    ["data", "validate"],
    ["demo"],
    ["train"],
    ["merge"],
    ["eval"],
    ["compare"],
    ["mcp"],
    ["mcp", "proxy"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help(command: list[str]) -> None:
    proc = run_cli(*command, "--help", check=True)
    assert "Usage:" in proc.stdout
    assert len(proc.stdout.splitlines()) > 5
    if command:
        assert "--help" in proc.stdout
