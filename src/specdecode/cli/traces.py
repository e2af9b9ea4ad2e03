"""``specdecode traces``: teacher traces (generate), an agent's logs as traces (import), and back (export)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from specdecode.cli._common import (
    Out,
    done,
    err_console,
    guard,
    registry_file,
    settings_command,
    unknown_tools,
    warn,
)
from specdecode.errors import InputError
from specdecode.settings import TraceGenerateSettings

GENERATE_FAILED = 1  # exit status of `traces generate` when any item failed (rerun to retry them)

traces_app = typer.Typer(
    help="Trace sources: ask a teacher model (Gemini or an OpenAI-compatible server) for traces, "
    "or import an agent's own OpenAI-style logs.",
    no_args_is_help=True,
)


@settings_command(traces_app, "generate", TraceGenerateSettings)
def generate(settings: TraceGenerateSettings) -> None:
    """Ask a teacher model for a thought → action trace per question; resumable, cached, budgeted.

    Exit status 1 when any item failed (they are listed in OUT.errors.jsonl; a rerun asks again
    for them), 0 when every item has a trace."""
    from specdecode.registry import load_registry
    from specdecode.teacher.cache import default_cache_path
    from specdecode.teacher.client import ClientConfig, LLMClient, RetryPolicy
    from specdecode.teacher.generate import TraceGenerator, generate_traces, load_questions, side_path
    from specdecode.teacher.providers import GenerationSettings

    s = settings
    questions_folder = s.questions.is_dir()
    guard(
        inputs=[registry_file(s.registry), None if questions_folder else s.questions],
        input_folders=[s.questions] if questions_folder else [],
        files={
            "--out": s.out,
            "errors file": side_path(s.out, "errors.jsonl"),
            "summary file": side_path(s.out, "summary.json"),
            "--cache": None if s.no_cache else (s.cache or default_cache_path()),
        },
    )
    reg = load_registry(s.registry)
    items = load_questions(s.questions, s.split)
    config = ClientConfig(
        provider=s.provider,
        model=s.model,
        base_url=s.base_url,
        api_key_env=s.api_key_env,
        timeout=s.timeout,
        generation=GenerationSettings(s.temperature_value(), s.seed, s.max_tokens, s.json_mode),
        retry=RetryPolicy(max_attempts=s.max_attempts, base_delay=s.backoff, max_delay=s.max_backoff),
        max_calls=s.max_calls,
        concurrency=s.concurrency,
        cache=not s.no_cache,
        cache_path=s.cache,
    )
    client = LLMClient(config)
    try:
        generator = TraceGenerator(client, reg, s.tool_style)
        summary = generate_traces(
            items, generator, s.out, show_progress=s.progress is not False, overwrite=s.overwrite
        )
    finally:
        client.close()
    stats = summary["client"]
    counts = (
        f"{summary['n']} questions → {summary['traces']} traces ({summary['valid']} valid, "
        f"{summary['invalid']} invalid), {summary['failed']} failed; {stats['calls']} calls, "
        f"{stats['retries']} retries, cache {stats['cache']['hits']} hits / "
        f"{stats['cache']['misses']} misses → {s.out}"
    )
    if summary["failed"]:
        warn(f"{summary['failed']} item(s) failed ({summary['error_kinds']}); see {summary['errors_file']}")
        if not summary["traces"]:  # nothing to show for the run: no ✓
            err_console.print(f"[red]failed:[/] {counts}", highlight=False, soft_wrap=True)
        else:
            done(counts)
        raise typer.Exit(GENERATE_FAILED)  # a rerun asks again for the failed items
    done(counts)


@traces_app.command("import")
def import_cmd(
    logs: Annotated[
        Path,
        typer.Argument(
            help="JSONL of OpenAI chat-completions style conversations, one per line, or (--format "
            "otlp) OpenTelemetry OTLP/JSON span export lines."
        ),
    ],
    out: Out,
    format: Annotated[
        str, typer.Option("--format", help="openai (chat-completions logs) or otlp (OpenTelemetry spans).")
    ] = "openai",
    registry_out: Annotated[
        Path | None, typer.Option(help="Write the tools' schemas from the logs as a registry YAML here.")
    ] = None,
    read_only: Annotated[
        Path | None,
        typer.Option(
            help="YAML/JSON overlay naming read-only tools: a list of names, "
            "{name: true|false}, or a registry."
        ),
    ] = None,
    read_only_tool: Annotated[
        list[str] | None,
        typer.Option(help="Mark one tool read-only (repeatable). Default: no tool is read-only."),
    ] = None,
) -> None:
    """Turn an agent's logged conversations into traces: tool results become observations, message
    timestamps or durations become per-step actor_seconds and tool_seconds."""
    from specdecode.jsonl import write_jsonl
    from specdecode.teacher.logs import import_logs, read_only_names, write_registry

    if format not in ("openai", "otlp"):
        raise InputError(f"--format {format!r}: choose openai or otlp")
    guard(inputs=[logs, read_only], files={"--out": out, "--registry-out": registry_out})
    if format == "otlp":
        from specdecode.integrations.otlp import import_command

        import_command([logs], out)
        return
    marked = read_only_names(read_only, read_only_tool or [])
    result = import_logs(logs, marked)
    write_jsonl(out, result.traces)
    if result.conflicts:
        warn(
            "tools declared with different schemas in different lines (first kept): "
            + ", ".join(result.conflicts)
        )
    if registry_out is not None:
        write_registry(registry_out, result.tools)
    n_ro = sum(t.read_only for t in result.tools)
    done(
        f"{len(result.traces)} conversations → {result.steps} steps ({result.timed_steps} timed) → {out}; "
        f"{len(result.tools)} tools ({n_ro} read-only)" + (f" → {registry_out}" if registry_out else "")
    )


@traces_app.command("export")
def export_cmd(
    traces: Annotated[Path, typer.Argument(help="Trace JSONL.")],
    out: Out,
    registry: Annotated[
        str | None,
        typer.Option(help="Add the tools' JSON schemas from this registry (tools4, tools17 or a file)."),
    ] = None,
) -> None:
    """Write traces as OpenAI chat-completions style conversations (what ``traces import`` reads)."""
    from specdecode.jsonl import read_records, write_jsonl
    from specdecode.records import TraceRecord
    from specdecode.registry import load_registry
    from specdecode.teacher.logs import trace_to_conversation

    guard(inputs=[traces, registry_file(registry)], files={"--out": out})
    reg = load_registry(registry) if registry else None
    records = read_records(traces, TraceRecord)
    if reg is not None:
        unknown_tools(traces, records, reg, hint=" (exported without their schemas)")
    write_jsonl(out, [trace_to_conversation(r, reg) for r in records])
    done(f"{len(records)} traces → {out}")
