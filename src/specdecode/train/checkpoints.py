"""Checkpoints of an interrupted run: which exist, which were saved to the end (a kill during a
save leaves a half-written one, skipped with a warning when resuming)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

console = Console(stderr=True)


def existing_checkpoints(output_dir: Path) -> list[Path]:
    return sorted(output_dir.glob("checkpoint-*")) if output_dir.is_dir() else []


def complete_checkpoint(folder: Path) -> bool:
    """Saved to the end: the trainer state (written last) parses, and the adapter weights are there."""
    try:
        json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any((folder / name).is_file() for name in ("adapter_model.safetensors", "adapter_model.bin"))


def last_complete_checkpoint(output_dir: Path) -> str | None:
    """The newest ``checkpoint-N`` that was saved to the end; warns about newer half-written ones
    (a kill during a save) that it skips."""

    def step(folder: Path) -> str:
        return folder.name.removeprefix("checkpoint-")

    numbered = [p for p in existing_checkpoints(output_dir) if p.is_dir() and step(p).isdigit()]
    skipped: list[str] = []
    found: Path | None = None
    for folder in sorted(numbered, key=lambda p: int(step(p)), reverse=True):
        if complete_checkpoint(folder):
            found = folder
            break
        skipped.append(folder.name)
    if skipped:
        console.print(
            f"[yellow]warning:[/] --resume: skipping incomplete checkpoint(s) {', '.join(skipped)} in "
            f"{output_dir} (no trainer_state.json or adapter weights: a save cut short?)",
            highlight=False,
            soft_wrap=True,
        )
    return str(found) if found is not None else None
