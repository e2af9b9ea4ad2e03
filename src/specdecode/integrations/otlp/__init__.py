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

Malformed input (bad JSON, no ``resourceSpans``, a span without ids or times) raises
:class:`~specdecode.errors.InputError` with the file and line.
"""

from specdecode.integrations.otlp.assemble import import_otlp
from specdecode.integrations.otlp.command import import_command, main
from specdecode.integrations.otlp.spans import NO_QUESTION, OtlpReport, read_spans

__all__ = ["NO_QUESTION", "OtlpReport", "import_command", "import_otlp", "main", "read_spans"]
