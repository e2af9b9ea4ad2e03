"""``specdecode data``: synthetic GAIA-format traces, conversion to chat data, validation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from specdecode.cli._common import (
    Out,
    SkipInvalid,
    done,
    guard,
    parse_ratios,
    registry_file,
    settings_command,
    unknown_tools,
    warn,
)
from specdecode.errors import InputError
from specdecode.jsonl import ReadReport, read_records, write_jsonl
from specdecode.settings import ConvertSettings

MAX_SYNTH = 100_000  # questions `data synth` makes without --allow-large

data_app = typer.Typer(
    help="Synthetic GAIA-format traces, conversion to chat data, validation.", no_args_is_help=True
)


@data_app.command("synth")
def data_synth(
    out: Out,
    n: Annotated[int, typer.Option("--n", min=1, help=f"Number of questions (at most {MAX_SYNTH:,}).")] = 160,
    seed: Annotated[int, typer.Option(help="Generator seed; the same seed gives identical files.")] = 0,
    registry: Annotated[str, typer.Option(help="tools4 or tools17.")] = "tools4",
    allow_large: Annotated[
        bool, typer.Option("--allow-large", help=f"Allow --n above {MAX_SYNTH:,} (memory grows with it).")
    ] = False,
) -> None:
    """Generate GAIA-format questions (levels 1–3) with expert traces, written by this project."""
    from specdecode.data import synthesize

    if n > MAX_SYNTH and not allow_large:
        raise InputError(f"--n {n}: at most {MAX_SYNTH:,} questions (--allow-large lifts the limit)")
    guard(files={"--out": out})
    try:
        records = synthesize(n, seed, registry)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--registry") from None
    write_jsonl(out, records)
    done(f"{n} synthetic traces (registry {registry}, seed {seed}) → {out}")


@data_app.command("bench")
def data_bench(
    name: Annotated[str, typer.Argument(help="Benchmark: tau-retail or tau-airline.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for train/val/test.jsonl, tools.yaml.")],
    seed: Annotated[int, typer.Option(help="Split seed; the same seed gives identical files.")] = 0,
    ratios: Annotated[str, typer.Option(help="train,val,test fractions of the tasks.")] = "0.6,0.1,0.3",
    task_split: Annotated[
        str, typer.Option(help="The package's task set: test (τ-bench's annotated tasks), train or dev.")
    ] = "test",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N tasks.")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace files in --out that another run wrote.")
    ] = False,
) -> None:
    """Real traces from a public benchmark: τ-bench tasks (tau-trait package) with their gold
    tool calls executed on the package's own data.

    Writes train/val/test.jsonl (split by user, seeded), all.jsonl, the tools' registry
    (tools.yaml, read_only from each tool's verb) and bench.json (counts, package version).
    """
    from specdecode.data.bench import write_bench

    guard(folders={"--out": out})
    manifest = write_bench(
        name,
        out,
        seed=seed,
        ratios=parse_ratios(ratios),
        task_split=task_split,
        limit=limit,
        overwrite=overwrite,
    )
    splits = ", ".join(f"{k} {v['traces']}" for k, v in manifest["splits"].items())
    done(
        f"{name}: {manifest['traces']} traces, {manifest['all']['steps']} executed calls "
        f"({manifest['all']['read_only_steps']} read-only), {manifest['tools']} tools → {out} ({splits})"
    )


@settings_command(data_app, "convert", ConvertSettings)
def data_convert(settings: ConvertSettings) -> None:
    """Turn traces into chat JSONL for training and evaluation."""
    from specdecode.data import convert
    from specdecode.prompts import PromptOptions
    from specdecode.records import TraceRecord
    from specdecode.registry import load_registry
    from specdecode.teacher.validate import TraceValidator

    guard(inputs=[settings.traces, registry_file(settings.registry)], files={"--out": settings.out})
    reg = load_registry(settings.registry)
    report = ReadReport(settings.traces)
    records = read_records(settings.traces, TraceRecord, skip_invalid=settings.skip_invalid, report=report)
    if not records:
        warn(f"0 records in {settings.traces}")
    unknown_tools(settings.traces, records, reg, settings.strict, " (--strict makes this an error)")
    validator = TraceValidator(reg)
    broken = [
        (line, f"step {number}: {step.action.tool_name}: {issues[0]}")
        for record, line in zip(records, report.lines, strict=True)
        for number, step in enumerate(record.trace, start=1)
        if (issues := validator.argument_errors(step.action.tool_name, step.action.arguments))
    ]
    if broken:
        line, first = broken[0]
        if settings.strict:
            raise InputError(f"arguments break the tool's schema: {first}", settings.traces, line)
        warn(
            f"{settings.traces}: {len(broken)} calls with arguments that break the tool's schema "
            f"(first: {settings.traces}:{line}: {first}; --strict makes this an error)"
        )
    chats = convert(records, settings.form, reg, PromptOptions(tool_style=settings.tool_style))
    write_jsonl(settings.out, chats)
    done(f"{len(records)} traces → {len(chats)} {settings.form} chat examples → {settings.out}")


@data_app.command("validate")
def data_validate(
    file: Annotated[Path, typer.Argument(help="JSONL file to check.")],
    kind: Annotated[str, typer.Option(help="trace, chat or question.")] = "trace",
    skip_invalid: SkipInvalid = False,
) -> None:
    """Check a file against its record format; exit 2 with path:line on the first problem."""
    from specdecode.records import ChatRecord, QuestionRecord, TraceRecord

    models = {"trace": TraceRecord, "chat": ChatRecord, "question": QuestionRecord}
    if kind not in models:
        raise typer.BadParameter("choose trace, chat or question", param_hint="--kind")
    report = ReadReport(file)
    read_records(file, models[kind], skip_invalid=skip_invalid, report=report)
    done(
        f"{file}: {report.kept} valid {kind} records"
        + (f", {len(report.skipped)} skipped" if report.skipped else "")
    )
