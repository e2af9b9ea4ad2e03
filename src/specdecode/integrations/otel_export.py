"""Write OpenTelemetry spans as OTLP/JSON lines (extra ``specdecode[otel]``)::

    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileExporter("spans.jsonl")))
    ...                                   # run the instrumented agent
    # then: specdecode traces import spans.jsonl --format otlp --out traces.jsonl

Each ``export`` call appends one ``ExportTraceServiceRequest`` as a JSON line, encoded by the
OTLP exporter's own protobuf encoder (``opentelemetry-exporter-otlp-proto-common``) with the
OTLP/JSON spec's hex trace and span ids.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def _hex_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (base64.b64decode(v).hex() if k in _ID_KEYS and isinstance(v, str) and v else _hex_ids(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def spans_to_otlp_json(spans: Sequence[ReadableSpan]) -> str:
    """Finished spans → one OTLP/JSON export request (a single line)."""
    request = MessageToDict(encode_spans(spans))
    return json.dumps(_hex_ids(request), ensure_ascii=False, separators=(",", ":"))


class OtlpJsonFileExporter(SpanExporter):
    """A ``SpanExporter`` appending OTLP/JSON export lines to ``path``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        line = spans_to_otlp_json(spans)
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


__all__ = ["OtlpJsonFileExporter", "spans_to_otlp_json"]
