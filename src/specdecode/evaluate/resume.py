"""Resumable results files: rows appended as they finish, a rerun keeps the rows of its own
settings (the ``run`` id every row carries) and refuses another run's rows unless told to
replace them; the final file is rewritten in input order."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from specdecode.errors import InputError
from specdecode.jsonl import append_jsonl, write_jsonl

if TYPE_CHECKING:
    from specdecode.evaluate.examples import Example

console = Console(stderr=True)


def fingerprint_id(fingerprint: dict[str, Any]) -> str:
    """A short stable id of a run's settings, stored in every row it writes."""
    canonical = json.dumps(fingerprint, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def check_output_file(output: str | Path) -> None:
    """An ``--output_file`` that is a folder stops the command (before any model loads)."""
    if Path(output).is_dir():
        raise InputError("is a directory, expected a results file (--output_file)", output)


def _resume(output: Path, ids: set[str], run_id: str | None, overwrite: bool) -> dict[str, dict[str, Any]]:
    """Rows already written for these ids by a run with the same settings (a torn last line from
    a kill is ignored). Rows of a run with other settings stop the command unless ``overwrite``."""
    done: dict[str, dict[str, Any]] = {}
    check_output_file(output)
    if not output.exists():
        return done
    for line in output.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(row, dict):
            continue
        if run_id is not None and row.get("run") != run_id:
            if overwrite:
                return {}
            raise InputError(
                "holds results of a run with other settings (model, adapter, mode, backend, registry, "
                "prompt or generation settings, judge, or input file); use --overwrite to replace it, "
                "or another --output_file",
                output,
            )
        if row.get("id") in ids:
            done[row["id"]] = row
    return done


def run_examples(
    examples: Sequence[Example],
    output: Path,
    make_rows: Callable[[list[Example]], list[dict]],
    chunk: int,
    label: str,
    run_id: str | None = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Answer pending examples in chunks, appending rows as they finish; return all rows in input order.

    Every row carries ``run`` = ``run_id``, so a rerun resumes only its own rows.
    """
    ids = [e.id for e in examples]
    done = _resume(output, set(ids), run_id, overwrite)
    pending = [e for e in examples if e.id not in done]
    if done:
        console.print(f"resuming: {len(done)} of {len(examples)} examples already in {output}")
    # Rewrite what is kept (drops a torn line, or another run's rows with --overwrite) before appending.
    if output.exists():
        write_jsonl(output, [done[i] for i in ids if i in done])
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(label, total=len(examples), completed=len(done))
        try:
            for start in range(0, len(pending), chunk):
                for row in make_rows(list(pending[start : start + chunk])):
                    if run_id is not None:
                        row["run"] = run_id
                    append_jsonl(output, row)
                    done[row["id"]] = row
                    progress.advance(task)
        except InputError:  # e.g. the server is unreachable: the error line stands alone, no bar
            progress.live.transient = True
            raise
    rows = [done[i] for i in ids]
    write_jsonl(output, rows)
    return rows
