"""``specdecode eval`` and ``specdecode compare``: generate, extract calls, score, summarise.

Both read trace or chat JSONL, build one request per example (``trace`` mode: the whole trace
from the question; ``next-call`` mode: one prompt per step, the speculator's job), and write
per-example JSONL (the prototype's keys plus structured fields) and a summary JSON beside it.
Reruns resume: ids already in the output are skipped, and the final file is rewritten in input
order, so it equals the file of an uninterrupted run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from specdecode.errors import InputError
from specdecode.evaluate.backends import FIRST_CALL_STOPS, Backend, Generation, GenerationConfig, Request
from specdecode.evaluate.metrics import (
    ALL_METRICS,
    BINARY,
    breakdown,
    confusion,
    example_metrics,
    paired,
    rate,
)
from specdecode.evaluate.parse import parse_calls
from specdecode.jsonl import append_jsonl, iter_json_lines, read_records, write_json, write_jsonl
from specdecode.prompts import PromptOptions
from specdecode.records import ChatRecord, ToolCall, TraceRecord
from specdecode.registry import Registry

console = Console(stderr=True)
MODES = ("trace", "next-call")


@dataclass
class Example:
    """One evaluation item: the prompt, the gold calls and where it comes from."""

    id: str
    request: Request
    gold: list[ToolCall]
    gold_raw: str
    level: int | None
    step: int | None


def _gold_from_chat(record: ChatRecord) -> tuple[list[dict[str, Any]], list[ToolCall], str]:
    """Prompt messages (before the first assistant turn) and the gold calls of a chat record."""
    messages = [m.model_dump(exclude_none=True) for m in record.messages]
    first = next((i for i, m in enumerate(record.messages) if m.role == "assistant"), None)
    if first is None:
        raise InputError(f"example {record.id!r} has no assistant message to score against")
    gold: list[ToolCall] = []
    raw_parts = []
    for message in record.messages[first:]:
        if message.role != "assistant":
            continue
        calls = [c.model_dump() for c in message.tool_calls] if message.tool_calls else None
        gold += parse_calls(message.content, calls).calls
        raw_parts.append(message.content or json.dumps(calls))
    return messages[:first], gold, "\n".join(raw_parts)


def load_examples(
    path: str | Path, mode: str, registry: Registry, options: PromptOptions, skip_invalid: bool = False
) -> list[Example]:
    """Examples from a trace JSONL (converted for the mode) or a chat JSONL (used as is)."""
    from specdecode.data.convert import convert

    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}: choose trace or next-call")
    first = next(iter_json_lines(path), None)
    if first is None:
        raise InputError("file has no records", path)
    if "trace" in first[1] and "messages" not in first[1]:
        traces = read_records(path, TraceRecord, skip_invalid=skip_invalid)
        chats = convert(traces, "steps" if mode == "next-call" else "plain", registry, options)
    else:
        chats = read_records(path, ChatRecord, skip_invalid=skip_invalid)
    examples = []
    for chat in chats:
        messages, gold, raw = _gold_from_chat(chat)
        if mode == "next-call":
            gold = gold[:1]
        extra = chat.model_dump()
        examples.append(
            Example(
                id=chat.id,
                request=Request(chat.id, messages, chat.tools),
                gold=gold,
                gold_raw=raw,
                level=extra.get("level"),
                step=extra.get("step"),
            )
        )
    return examples


def _calls_json(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    return [{"tool_name": c.tool_name, "arguments": c.arguments} for c in calls]


def score(example: Example, generation: Generation, registry: Registry, mode: str) -> dict[str, Any]:
    """Parse one generation and compute its metrics against the gold calls."""
    positional = {t.name: list(t.parameters.get("properties", {})) for t in registry.tools}
    parsed = parse_calls(generation.text, generation.tool_calls, set(registry.names), positional)
    pred = parsed.calls[:1] if mode == "next-call" else parsed.calls
    metrics = example_metrics(example.gold, pred, parsed.ok)
    unknown = [c.tool_name for c in pred if c.tool_name not in set(registry.names)]
    return {
        "pred_raw": generation.text,
        "pred_calls": _calls_json(pred),
        "parse_format": parsed.format,
        "unknown_tools": unknown,
        "metrics": metrics,
        "latency": round(generation.latency, 4),
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "tokens_per_s": round(generation.completion_tokens / generation.latency, 2)
        if generation.latency
        else None,
    }


def primary(metrics: dict[str, Any], mode: str) -> float:
    """The prototype's ``accuracy``: first-call name in next-call mode, name F1 for whole traces."""
    return float(metrics["first_call_name"] if mode == "next-call" else metrics["name_f1"])


def _base_row(example: Example) -> dict[str, Any]:
    return {
        "id": example.id,
        "level": example.level,
        "step": example.step,
        "gold_raw": example.gold_raw,
        "gold_calls": _calls_json(example.gold),
        "gold_tool": example.gold[0].tool_name if example.gold else None,
    }


def _resume(output: Path, ids: set[str]) -> dict[str, dict[str, Any]]:
    """Rows already written for these ids (a torn last line from a kill is ignored)."""
    done: dict[str, dict[str, Any]] = {}
    if not output.exists():
        return done
    for line in output.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and row.get("id") in ids:
            done[row["id"]] = row
    return done


def run_examples(
    examples: Sequence[Example],
    output: Path,
    make_rows: Callable[[list[Example]], list[dict]],
    chunk: int,
    label: str,
) -> list[dict[str, Any]]:
    """Answer pending examples in chunks, appending rows as they finish; return all rows in input order."""
    ids = [e.id for e in examples]
    done = _resume(output, set(ids))
    pending = [e for e in examples if e.id not in done]
    if done:
        console.print(f"resuming: {len(done)} of {len(examples)} examples already in {output}")
        write_jsonl(output, [done[i] for i in ids if i in done])  # drop a torn line before appending
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(label, total=len(examples), completed=len(done))
        for start in range(0, len(pending), chunk):
            for row in make_rows(list(pending[start : start + chunk])):
                append_jsonl(output, row)
                done[row["id"]] = row
                progress.advance(task)
    rows = [done[i] for i in ids]
    write_jsonl(output, rows)
    return rows


def generation_config(
    mode: str, max_new_tokens: int | None, batch_size: int, repetition_penalty: float
) -> GenerationConfig:
    """Next-call mode stops after the first complete call and needs few tokens."""
    return GenerationConfig(
        max_new_tokens=max_new_tokens or (96 if mode == "next-call" else 512),
        stop=FIRST_CALL_STOPS if mode == "next-call" else (),
        batch_size=batch_size,
        repetition_penalty=repetition_penalty,
    )


def summarise(rows: Sequence[dict[str, Any]], mode: str, prefix: str = "") -> dict[str, Any]:
    """Rates with 95 % bootstrap intervals, per level and per gold tool, confusion, speed."""
    m = lambda name: lambda r: r[f"{prefix}metrics"][name]  # noqa: E731
    latency = [r[f"{prefix}latency"] for r in rows]
    completion = sum(r[f"{prefix}completion_tokens"] for r in rows)
    return {
        "n": len(rows),
        "metrics": {name: rate([m(name)(r) for r in rows]) for name in ALL_METRICS},
        "per_level": {
            name: breakdown(rows, lambda r: r["level"], m(name))
            for name in ("first_call_name", "first_call_exact")
        },
        "per_tool": {
            name: breakdown(rows, lambda r: r["gold_tool"], m(name))
            for name in ("first_call_name", "first_call_exact")
        },
        "confusion_first_tool": confusion(rows, prefix),
        "unknown_tools": sum(len(r[f"{prefix}unknown_tools"]) for r in rows),
        "parse_formats": _count(r[f"{prefix}parse_format"] for r in rows),
        "latency_mean_s": sum(latency) / len(latency) if latency else None,
        "tokens_per_s": completion / sum(latency) if latency and sum(latency) else None,
        "mode": mode,
    }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def evaluate(
    backend: Backend,
    examples: Sequence[Example],
    output: Path,
    registry: Registry,
    mode: str,
    config: GenerationConfig,
    adapter: bool = True,
) -> dict[str, Any]:
    """Score one model (the adapter when the backend has one) on every example."""

    def make_rows(batch: list[Example]) -> list[dict[str, Any]]:
        generations = backend.generate([e.request for e in batch], config, adapter=adapter)
        rows = []
        for example, generation in zip(batch, generations):
            row = {**_base_row(example), **score(example, generation, registry, mode)}
            row["accuracy"] = primary(row["metrics"], mode)
            rows.append(row)
        return rows

    started = time.time()
    rows = run_examples(examples, output, make_rows, max(config.batch_size, 1) * 4, f"eval ({backend.name})")
    summary = {
        **summarise(rows, mode),
        "backend": backend.name,
        "dtype": getattr(backend, "dtype", None),
        "adapter": adapter and backend.has_adapter,
        "seconds": round(time.time() - started, 1),
    }
    write_json(output.with_suffix(".summary.json"), summary)
    return summary


def compare(
    backend: Backend,
    examples: Sequence[Example],
    output: Path,
    registry: Registry,
    mode: str,
    config: GenerationConfig,
    judge: Any,
) -> dict[str, Any]:
    """Base and adapter on the same examples from one loaded model, with paired statistics."""
    if not backend.has_adapter:
        raise InputError("compare needs an adapter (--lora_dir)")

    def make_rows(batch: list[Example]) -> list[dict[str, Any]]:
        requests = [e.request for e in batch]
        base = backend.generate(requests, config, adapter=False)
        lora = backend.generate(requests, config, adapter=True)
        rows = []
        for example, b, lo in zip(batch, base, lora):
            sb, sl = score(example, b, registry, mode), score(example, lo, registry, mode)
            verdict = judge.compare(example, sb, sl, mode)
            row = {
                **_base_row(example),
                "base_score": verdict.base_score,
                "lora_score": verdict.lora_score,
                "winner": verdict.winner,
                "comparison_reason": verdict.reason,
                "base_pred": b.text,
                "lora_pred": lo.text,
            }
            for key, value in sb.items():
                row[f"base_{key}"] = value
            for key, value in sl.items():
                row[f"lora_{key}"] = value
            rows.append(row)
        return rows

    started = time.time()
    rows = run_examples(
        examples, output, make_rows, max(config.batch_size, 1) * 4, f"compare ({backend.name})"
    )
    tests = {
        name: paired(
            [bool(r["base_metrics"][name]) for r in rows], [bool(r["lora_metrics"][name]) for r in rows]
        )
        for name in BINARY
        if name not in ("loop", "over_action")
    }
    winners = _count(r["winner"] for r in rows)
    summary = {
        "n": len(rows),
        "mode": mode,
        "backend": backend.name,
        "dtype": getattr(backend, "dtype", None),
        "judge": judge.name,
        "base": summarise(rows, mode, "base_"),
        "lora": summarise(rows, mode, "lora_"),
        "paired": tests,
        "winners": winners,
        "seconds": round(time.time() - started, 1),
    }
    write_json(output.with_suffix(".summary.json"), summary)
    return summary
