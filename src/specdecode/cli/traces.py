"""``specdecode traces``: teacher traces (generate), an agent's logs as traces (import), and back (export)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from specdecode.cli._common import done, warn
from specdecode.errors import InputError

traces_app = typer.Typer(
    help="Trace sources: ask a teacher model (Gemini or an OpenAI-compatible server) for traces, "
    "or import an agent's own OpenAI-style logs.",
    no_args_is_help=True,
)

Out = Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file (written atomically).")]


def _temperature(text: str) -> float | None:
    if text.strip().lower() in ("default", "none", ""):
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(f"--temperature: expected a number or 'default', got {text!r}") from None


@traces_app.command("generate")
def generate(
    questions: Annotated[
        Path, typer.Argument(help="Questions JSONL (id, question, level…) or a local GAIA folder.")
    ],
    out: Out,
    provider: Annotated[
        str, typer.Option(help="gemini (google-genai) or openai (any OpenAI-compatible server).")
    ],
    model: Annotated[
        str, typer.Option(help="Teacher model, e.g. gemini-2.5-pro, gpt-5, or a served model name.")
    ],
    base_url: Annotated[
        str | None,
        typer.Option(
            help="Server URL, e.g. http://localhost:8000/v1 for vLLM (default: the provider's own)."
        ),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            help="Name of the environment variable holding the key [default: GEMINI_API_KEY/GOOGLE_API_KEY "
            "or OPENAI_API_KEY]. Keys are never taken from flags."
        ),
    ] = None,
    registry: Annotated[
        str, typer.Option(help="Tool registry: tools4, tools17 or a YAML/JSON file.")
    ] = "tools4",
    split: Annotated[str, typer.Option(help="GAIA split when QUESTIONS is a GAIA folder.")] = "validation",
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 8,
    max_calls: Annotated[
        int | None,
        typer.Option(
            min=0, help="Budget of server calls for this run, retries included (default: no limit)."
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds before one request is abandoned.")
    ] = 120.0,
    max_attempts: Annotated[
        int, typer.Option(min=1, help="Attempts per item before it is an error row.")
    ] = 6,
    backoff: Annotated[
        float, typer.Option(min=0.0, help="First retry delay in seconds; doubles per attempt, with jitter.")
    ] = 1.0,
    max_backoff: Annotated[
        float, typer.Option(min=0.0, help="Longest delay between attempts, seconds.")
    ] = 60.0,
    temperature: Annotated[
        str, typer.Option(help="Sampling temperature, or 'default' to send none (reasoning models).")
    ] = "0",
    seed: Annotated[int | None, typer.Option(help="Sampling seed sent to the provider.")] = 0,
    max_tokens: Annotated[int, typer.Option(min=1, help="Longest reply, in tokens.")] = 4096,
    json_mode: Annotated[
        str,
        typer.Option(
            help="schema: enforce the trace schema; object: JSON mode only; "
            "off: plain text (repaired if needed)."
        ),
    ] = "schema",
    tool_style: Annotated[
        str, typer.Option(help="How tools appear in the teacher's prompt: json (full schemas) or compact.")
    ] = "json",
    cache: Annotated[
        Path | None,
        typer.Option(
            help="Reply cache (SQLite) [default: $SPECDECODE_LLM_CACHE or "
            "~/.cache/specdecode/llm-cache.sqlite]."
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither read nor write the reply cache.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Ask a teacher model for a thought → action trace per question; resumable, cached, budgeted."""
    from specdecode.registry import load_registry
    from specdecode.teacher.client import ClientConfig, LLMClient, RetryPolicy
    from specdecode.teacher.generate import TraceGenerator, generate_traces, load_questions
    from specdecode.teacher.providers import GenerationSettings

    if tool_style not in ("json", "compact"):
        raise InputError(f"--tool-style: choose json or compact, not {tool_style!r}")
    reg = load_registry(registry)
    items = load_questions(questions, split)
    config = ClientConfig(
        provider=provider,
        model=model,
        base_url=base_url,
        api_key_env=api_key_env,
        timeout=timeout,
        generation=GenerationSettings(_temperature(temperature), seed, max_tokens, json_mode),
        retry=RetryPolicy(max_attempts=max_attempts, base_delay=backoff, max_delay=max_backoff),
        max_calls=max_calls,
        concurrency=concurrency,
        cache=not no_cache,
        cache_path=cache,
    )
    client = LLMClient(config)
    try:
        summary = generate_traces(items, TraceGenerator(client, reg, tool_style), out, show_progress=progress)  # type: ignore[arg-type]
    finally:
        client.close()
    stats = summary["client"]
    if summary["failed"]:
        warn(f"{summary['failed']} item(s) failed ({summary['error_kinds']}); see {summary['errors_file']}")
    done(
        f"{summary['n']} questions → {summary['traces']} traces ({summary['valid']} valid, "
        f"{summary['invalid']} invalid), {summary['failed']} failed; {stats['calls']} calls, "
        f"{stats['retries']} retries, cache {stats['cache']['hits']} hits / "
        f"{stats['cache']['misses']} misses → {out}"
    )


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

    reg = load_registry(registry) if registry else None
    records = read_records(traces, TraceRecord)
    write_jsonl(out, [trace_to_conversation(r, reg) for r in records])
    done(f"{len(records)} traces → {out}")
