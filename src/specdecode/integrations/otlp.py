"""OpenTelemetry spans → trace records (``specdecode traces import --format otlp``).

Input: OTLP/JSON trace exports — a file of export requests, one per line (what the OTel
Collector's file exporter and :class:`~specdecode.integrations.otel_export.OtlpJsonFileExporter`
write), or one JSON document; each is ``{"resourceSpans": [{"scopeSpans": [{"spans": [...]}]}]}``.
Span and trace ids may be hex (the OTLP/JSON spec) or base64 (protobuf's ``MessageToJson``);
``snake_case`` field names are accepted too.

One trace record per OTel trace (``id`` = the trace id) that holds a tool or model span:

* **tool spans** — GenAI semantic conventions: ``gen_ai.operation.name = execute_tool`` (span
  ``execute_tool {gen_ai.tool.name}``) with ``gen_ai.tool.name``, ``gen_ai.tool.call.id`` and,
  where content capture is on, ``gen_ai.tool.call.arguments`` / ``gen_ai.tool.call.result``;
  older names ``running tool`` spans with ``tool_arguments`` / ``tool_response`` (Pydantic AI
  before the semconv names), ``gen_ai.tool.arguments`` / ``gen_ai.tool.result``.
  OpenInference: ``openinference.span.kind = TOOL`` with ``tool.name``, ``tool_call.id``,
  arguments in ``tool_call.function.arguments``, ``input.value`` (a JSON object) or
  ``tool.parameters`` (when it holds values, not a JSON Schema), result in ``output.value``;
* **model spans** — ``gen_ai.operation.name`` ``chat`` / ``text_completion`` /
  ``generate_content``, or ``openinference.span.kind = LLM``.

Each tool span is a step, in start order: ``action`` from the tool span (arguments missing
there are taken from the tool call recorded in the model span's output, matched by call id);
``observation`` from the result (else from a later model input's tool response, by call id);
``tool_seconds`` = the tool span's duration; ``actor_seconds`` = the duration of the model
span that emitted the call — found by call id in the model spans' output messages, else the
latest model span that ended before the tool started under the same parent (then anywhere in
the trace). Further calls of one model span get ``actor_seconds`` 0; the model span's text
is the first call's ``thought``. The question is the first user message of the first model
span's input (``gen_ai.input.messages``, ``llm.input_messages.*``, ``gen_ai.prompt*``,
``gen_ai.user.message`` events) or an agent span's ``input.value``. Arguments, results and
questions the spans do not hold are never guessed: they are counted and listed per file in
the :class:`OtlpReport` (a step without arguments has ``"arguments_missing": true``, one
without a result no ``observation``).

Reading and decoding spans: :mod:`.otlp_spans`; what a span means: :mod:`.otlp_semantics`;
turning a trace's spans into a record: :mod:`.otlp_assembly`. This module re-exports their
names and holds the command.

Malformed input (bad JSON, no ``resourceSpans``, a span without ids or times) raises
:class:`~specdecode.errors.InputError` with the file and line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from specdecode.errors import InputError

# Every name this module held before it was split stays importable from here.
from specdecode.integrations.otlp_assembly import (  # noqa: F401 (re-exported)
    NO_QUESTION,
    OtlpReport,
    _Ends,
    _import_otlp,
    _Models,
    _trace_record,
    import_otlp,
)
from specdecode.integrations.otlp_semantics import (  # noqa: F401 (re-exported)
    ARGUMENT_KEYS,
    CALL_ID_KEYS,
    MODEL_KINDS,
    NAME_KEYS,
    RESULT_KEYS,
    TOOL_KINDS,
    _indexed,
    _is_model,
    _is_tool,
    _json,
    _looks_like_schema,
    _messages,
    _normalise,
    _prefix_pattern,
    _question,
    _text_of,
    _tool_arguments,
    _tool_name,
    _tool_result,
)
from specdecode.integrations.otlp_spans import (  # noqa: F401 (re-exported)
    _HEX,
    _INT,
    _SNAKE,
    _any_value,
    _attributes,
    _Bad,
    _documents,
    _id,
    _key,
    _kv,
    _list,
    _nanos,
    _number,
    _object,
    _read_spans,
    _resource_spans,
    _Span,
    _span,
    _Where,
    read_spans,
)
from specdecode.records import TraceRecord


def import_command(files: list[Path], out: Path) -> list[OtlpReport]:
    """Import OTLP/JSON files into one trace JSONL; report each file (stderr)."""
    from specdecode.cli._common import done, warn
    from specdecode.inputs import bulk
    from specdecode.jsonl import write_jsonl
    from specdecode.outputs import guard

    guard(inputs=files, files={"--out": out})
    records: list[TraceRecord] = []
    reports = []
    with bulk():
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


if __name__ == "__main__":
    main()
