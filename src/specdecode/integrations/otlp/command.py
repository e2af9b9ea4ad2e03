"""``traces import --format otlp`` and ``python -m specdecode.integrations.otlp``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from specdecode.errors import InputError
from specdecode.integrations.otlp.assemble import import_otlp
from specdecode.integrations.otlp.spans import OtlpReport
from specdecode.records import TraceRecord


# ---------------------------------------------------------------------- command
def import_command(files: list[Path], out: Path) -> list[OtlpReport]:
    """Import OTLP/JSON files into one trace JSONL; report each file (stderr)."""
    from specdecode.cli._common import done, warn
    from specdecode.jsonl import write_jsonl

    records: list[TraceRecord] = []
    reports = []
    for path in files:
        got, report = import_otlp(path)
        records.extend(got)
        reports.append(report)
    write_jsonl(out, records)
    for report in reports:
        for line in report.warnings():
            warn(line)
    spans, steps = sum(r.spans for r in reports), sum(r.steps for r in reports)
    timed = sum(r.timed_steps for r in reports)
    done(f"{spans} spans → {len(records)} traces, {steps} steps ({timed} timed) → {out}")
    return reports


def _typer_app() -> Any:
    app = typer.Typer(help="OpenTelemetry spans → traces.", no_args_is_help=True, add_completion=False)

    @app.command("import")
    def import_otlp_cmd(
        files: Annotated[
            list[Path], typer.Argument(help="OTLP/JSON trace files (export lines or one document).")
        ],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output trace JSONL (written atomically).")],
    ) -> None:
        """Turn OpenTelemetry GenAI / OpenInference spans into traces with per-step timings."""
        import_command(files, out)

    return app


def main(argv: list[str] | None = None) -> None:
    """``python -m specdecode.integrations.otlp FILE... --out traces.jsonl``."""
    import click
    from rich.console import Console
    from rich.markup import escape

    try:
        _typer_app()(argv if argv is not None else sys.argv[1:], standalone_mode=False)
    except InputError as exc:
        Console(stderr=True).print(f"[red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
        raise SystemExit(InputError.exit_code) from None
    except click.exceptions.NoArgsIsHelpError:
        raise SystemExit(0) from None
    except click.exceptions.ClickException as exc:
        message = exc.format_message().replace("\n", " ")
        Console(stderr=True).print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
