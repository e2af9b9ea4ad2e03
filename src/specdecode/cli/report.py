"""``specdecode report RUN_DIR``: wiring only; the work is in specdecode.report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from specdecode.cli._common import done, guard, normalize_token

report_app = typer.Typer(
    context_settings={"help_option_names": ["-h", "--help"], "token_normalize_func": normalize_token},
)


@report_app.command("report")
def report_cmd(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="A run directory: what train, eval/compare and speculate replay wrote, in any combination "
            "(searched recursively).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where report.md, report.html and figures/ go. [default: RUN_DIR]"),
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="Page title. [default: from RUN_DIR]")] = None,
) -> None:
    """Write report.md and one self-contained report.html (plots embedded) from a run directory."""
    from specdecode.errors import InputError
    from specdecode.report import write_report

    if not run_dir.is_dir():
        raise InputError("no such run directory", run_dir)
    where = out if out is not None else run_dir
    guard(
        files={"--out (report.md)": where / "report.md", "--out (report.html)": where / "report.html"},
        folders={"--out": where},
        trees={"--out (figures/)": where / "figures"},
    )
    md, html = write_report(run_dir, out, title)
    done(f"report → {html} (and {md.name}, figures/)")
