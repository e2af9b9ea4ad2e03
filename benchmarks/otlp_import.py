"""OTLP import time against the number of spans in one trace (it must grow linearly).

    .venv/bin/python benchmarks/otlp_import.py                      # 1k … 50k spans, one trace
    .venv/bin/python benchmarks/otlp_import.py --spans 50000 --cli  # also the whole CLI command

Each file is one OTLP/JSON export line holding one trace of an agent run: a model span (``chat``,
GenAI conventions, the question in its input messages) before every tool span (``execute_tool``),
all under one agent span. Half the tool spans carry a call id the model span's output names; the
other half have none, so the importer links them by parent and time order (the path that was
quadratic: 50k spans took 96 s). ``read`` is the bounded JSON read and span decoding, ``import``
the whole :func:`specdecode.integrations.otlp.import_otlp` (read included), in wall-clock seconds
and in this process's CPU seconds (``cpu``; µs/span from it), the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from specdecode.integrations.otlp import import_otlp, read_spans

T0 = 1_700_000_000_000_000_000
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _attr(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def export_line(spans: int) -> str:
    """One OTLP/JSON export request: an agent span and ``spans - 1`` model and tool spans."""
    root = "a000000000000000"
    out = [
        {
            "traceId": TRACE,
            "spanId": root,
            "name": "agent run",
            "startTimeUnixNano": str(T0),
            "endTimeUnixNano": str(T0 + spans * 2_000_000),
            "attributes": [_attr("openinference.span.kind", "AGENT"), _attr("input.value", "Question?")],
        }
    ]
    for i in range(1, spans):
        start = T0 + i * 2_000_000
        span_id = f"{i:016x}"
        if i % 2:  # a model span
            call = f"call-{i}"
            output = [
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "tool_call", "id": call, "name": "search", "arguments": {"query": f"q{i}"}}
                    ],
                }
            ]
            attributes = [
                _attr("gen_ai.operation.name", "chat"),
                _attr("gen_ai.output.messages", json.dumps(output)),
            ]
            if i == 1:
                question = [{"role": "user", "parts": [{"type": "text", "content": "Question?"}]}]
                attributes.append(_attr("gen_ai.input.messages", json.dumps(question)))
            name = "chat model"
        else:  # a tool span; every other one names its call id
            attributes = [
                _attr("gen_ai.operation.name", "execute_tool"),
                _attr("gen_ai.tool.name", "search"),
                _attr("gen_ai.tool.call.result", f"result {i}"),
            ]
            if i % 4 == 0:
                attributes.append(_attr("gen_ai.tool.call.id", f"call-{i - 1}"))
            name = "execute_tool search"
        out.append(
            {
                "traceId": TRACE,
                "spanId": span_id,
                "parentSpanId": root,
                "name": name,
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + 1_500_000),
                "attributes": attributes,
            }
        )
    return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {}, "spans": out}]}]})


def best_of(repeats: int, fn) -> tuple[float, float]:
    """The best wall-clock and CPU seconds of ``repeats`` runs (CPU time is what a shared machine
    cannot inflate: another process's load stretches wall time, not this process's CPU time)."""
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return min(wall), min(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--spans", type=int, nargs="+", default=[1000, 5000, 10000, 25000, 50000], help="spans per trace"
    )
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs")
    parser.add_argument(
        "--cli", action="store_true", help="also time `specdecode traces import --format otlp`"
    )
    args = parser.parse_args(argv)
    cpu = platform.processor() or platform.machine()
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {cpu}")
    header = f"{'spans':>7} {'MB':>6} {'read s':>7} {'import s':>9} {'cpu s':>6} {'µs/span':>8} {'steps':>6}"
    if args.cli:
        header += f" {'CLI s':>6}"
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.spans:
            path = Path(tmp) / f"spans-{n}.jsonl"
            path.write_text(export_line(n) + "\n", encoding="utf-8")
            read, _ = best_of(args.repeats, lambda p=path: read_spans(p))
            results: list = []
            full, cpu = best_of(args.repeats, lambda p=path, out=results: out.append(import_otlp(p)))
            records, _ = results[-1]
            row = (
                f"{n:>7} {path.stat().st_size / 1e6:>6.1f} {read:>7.2f} {full:>9.2f} {cpu:>6.2f} "
                f"{1e6 * cpu / n:>8.1f} {sum(len(r.trace) for r in records):>6}"
            )
            if args.cli:
                command = [
                    sys.executable,
                    "-m",
                    "specdecode",
                    "traces",
                    "import",
                    str(path),
                    "--format",
                    "otlp",
                ]
                started = time.perf_counter()
                subprocess.run(
                    [*command, "--out", str(Path(tmp) / "t.jsonl")], check=True, capture_output=True
                )
                row += f" {time.perf_counter() - started:>6.2f}"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
