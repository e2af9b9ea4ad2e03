"""``specdecode eval`` and ``specdecode compare``: generate, extract calls, score, summarise.

Both read trace or chat JSONL, build one request per example (``trace`` mode: the whole trace
from the question; ``next-call`` mode: one prompt per step, the speculator's job), and write
per-example JSONL (the prototype's keys plus structured fields) and a summary JSON beside it.
Reruns resume: ids already in the output are skipped, and the final file is rewritten in input
order, so it equals the file of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from specdecode.data.convert import convert, step_examples
from specdecode.errors import InputError
from specdecode.evaluate.backends import Backend, Generation, GenerationConfig, Request
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
from specdecode.models import adapter_form, adapter_identity, file_sha256
from specdecode.prompts import PromptOptions, call_text
from specdecode.records import ChatRecord, ToolCall, ToolSpec, TraceRecord
from specdecode.registry import Registry
from specdecode.settings import CompareSettings, EvalSettings

console = Console(stderr=True)
MODES = ("trace", "next-call")


@dataclass
class Example:
    """One evaluation item: the prompt, the gold calls (typed) and where it comes from."""

    id: str
    request: Request
    gold: list[ToolCall]
    gold_raw: str
    level: int | None
    step: int | None


def _prompt_and_gold(record: ChatRecord) -> tuple[list[dict[str, Any]], list[ToolCall], str]:
    """Prompt messages (before the first assistant turn) and the gold calls of a user's chat record.

    Only for chat files a user brings: traces never go through text (see ``load_examples``).
    Structured ``tool_calls`` are taken as they are; plain assistant text is parsed.
    """
    messages = [m.model_dump(exclude_none=True) for m in record.messages]
    first = next((i for i, m in enumerate(record.messages) if m.role == "assistant"), None)
    if first is None:
        raise InputError(f"example {record.id!r} has no assistant message to score against")
    if record.step is not None and record.messages[-1].role == "assistant":
        first = len(record.messages) - 1  # a one-call example: earlier assistant turns are context
    gold: list[ToolCall] = []
    raw_parts = []
    for message in record.messages[first:]:
        if message.role != "assistant":
            continue
        if message.tool_calls:
            gold += [
                ToolCall(tool_name=c.function.name, arguments=c.function.arguments)
                for c in message.tool_calls
            ]
            raw_parts.append(json.dumps([c.model_dump(exclude_none=True) for c in message.tool_calls]))
        else:
            gold += parse_calls(message.content).calls
            raw_parts.append(message.content or "")
    return messages[:first], gold, "\n".join(raw_parts)


def _offered_tools(chat: ChatRecord, registry: Registry, trace: TraceRecord | None) -> list[ToolSpec]:
    """The tools a prompt offers: the record's own list, else the whole registry."""
    if trace is not None:
        return registry.subset(trace.tools)
    if chat.tools:
        specs = []
        for schema in chat.tools:
            function = schema.get("function", schema)
            specs.append(
                ToolSpec(
                    name=function.get("name", "?"),
                    description=function.get("description") or "-",
                    parameters=function.get("parameters") or {"type": "object", "properties": {}},
                )
            )
        return specs
    return list(registry.tools)


def _trace_chats(
    traces: Sequence[TraceRecord], mode: str, registry: Registry, options: PromptOptions, prompt_form: str
) -> list[ChatRecord]:
    if mode == "trace":
        return convert(traces, "plain", registry, options)
    if prompt_form == "conversation":
        return step_examples(traces, registry, options, prompt_form="conversation")
    return convert(traces, "steps", registry, options)


def load_examples(
    path: str | Path,
    mode: str,
    registry: Registry,
    options: PromptOptions,
    skip_invalid: bool = False,
    *,
    prompt_form: str = "steps",
    constrained: bool = False,
) -> list[Example]:
    """Examples from a trace JSONL (prompts built here, gold calls taken from the trace as typed
    ``ToolCall`` objects) or a chat JSONL (used as is, gold from its assistant turns).

    ``constrained`` attaches the JSON schema of one call among the prompt's offered tools.
    """
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}: choose trace or next-call")
    if constrained and mode != "next-call":
        raise InputError("--constrained applies to --mode next-call (one call per answer)")
    first = next(iter_json_lines(path), None)
    if first is None:
        raise InputError("file has no records", path)
    traces: dict[str, TraceRecord] = {}
    if "trace" in first[1] and "messages" not in first[1]:
        records = read_records(path, TraceRecord, skip_invalid=skip_invalid)
        traces = {t.id: t for t in records}
        chats = _trace_chats(records, mode, registry, options, prompt_form)
    else:
        chats = read_records(path, ChatRecord, skip_invalid=skip_invalid)
    examples = []
    for chat in chats:
        trace = traces.get(chat.source_id or chat.id) if traces else None
        if trace is not None:
            messages = _prompt_part(chat)
            if mode == "next-call":
                gold = [trace.trace[chat.step or 0].action]
            else:
                gold = [s.action for s in trace.trace]
            raw = "\n".join(call_text(c) for c in gold)
        else:
            messages, gold, raw = _prompt_and_gold(chat)
            if mode == "next-call":
                gold = gold[:1]
        schema = None
        if constrained:
            from specdecode.evaluate.constrain import call_schema

            schema = call_schema(_offered_tools(chat, registry, trace))
        request = Request(chat.id, messages, chat.tools, response_schema=schema)
        examples.append(
            Example(id=chat.id, request=request, gold=gold, gold_raw=raw, level=chat.level, step=chat.step)
        )
    return examples


def _prompt_part(chat: ChatRecord) -> list[dict[str, Any]]:
    """The prompt of a converted example: before its one target (a step example ends with the
    target call), or before the first assistant turn (a whole trace)."""
    messages = [m.model_dump(exclude_none=True) for m in chat.messages]
    if chat.step is not None:
        return messages[:-1]
    return messages[: next(i for i, m in enumerate(chat.messages) if m.role == "assistant")]


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
        "first_token_latency": _round(getattr(generation, "first_token_latency", None)),
        "batch_size": getattr(generation, "batch_size", None),
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "tokens_per_s": round(generation.completion_tokens / generation.latency, 2)
        if generation.latency
        else None,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


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


def fingerprint_id(fingerprint: dict[str, Any]) -> str:
    """A short stable id of a run's settings, stored in every row it writes."""
    canonical = json.dumps(fingerprint, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def check_output_file(output: str | Path) -> None:
    """An ``--output_file`` that is a folder stops the command (before any model loads)."""
    if Path(output).is_dir():
        raise InputError("is a directory, expected a results file (--output_file)", output)


def _resume(output: Path, ids: set[str], run_id: str | None, overwrite: bool) -> dict[str, dict[str, Any]]:
    """Rows already written for these ids by a run with the same settings (a torn last line from
    a kill is ignored). Rows of a run with other settings stop the command unless ``overwrite``."""
    done: dict[str, dict[str, Any]] = {}
    check_output_file(output)
    if not output.exists():
        return done
    for line in output.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(row, dict):
            continue
        if run_id is not None and row.get("run") != run_id:
            if overwrite:
                return {}
            raise InputError(
                "holds results of a run with other settings (model, adapter, mode, backend, registry, "
                "prompt or generation settings, judge, or input file); use --overwrite to replace it, "
                "or another --output_file",
                output,
            )
        if row.get("id") in ids:
            done[row["id"]] = row
    return done


def run_examples(
    examples: Sequence[Example],
    output: Path,
    make_rows: Callable[[list[Example]], list[dict]],
    chunk: int,
    label: str,
    run_id: str | None = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Answer pending examples in chunks, appending rows as they finish; return all rows in input order.

    Every row carries ``run`` = ``run_id``, so a rerun resumes only its own rows.
    """
    ids = [e.id for e in examples]
    done = _resume(output, set(ids), run_id, overwrite)
    pending = [e for e in examples if e.id not in done]
    if done:
        console.print(f"resuming: {len(done)} of {len(examples)} examples already in {output}")
    # Rewrite what is kept (drops a torn line, or another run's rows with --overwrite) before appending.
    if output.exists():
        write_jsonl(output, [done[i] for i in ids if i in done])
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(label, total=len(examples), completed=len(done))
        try:
            for start in range(0, len(pending), chunk):
                for row in make_rows(list(pending[start : start + chunk])):
                    if run_id is not None:
                        row["run"] = run_id
                    append_jsonl(output, row)
                    done[row["id"]] = row
                    progress.advance(task)
        except InputError:  # e.g. the server is unreachable: the error line stands alone, no bar
            progress.live.transient = True
            raise
    rows = [done[i] for i in ids]
    write_jsonl(output, rows)
    return rows


def generation_config(
    mode: str,
    max_new_tokens: int | None,
    batch_size: int,
    repetition_penalty: float,
    temperature: float = 0.0,
    seed: int = 0,
) -> GenerationConfig:
    """Next-call mode stops after the first complete call and needs few tokens."""
    return GenerationConfig(
        max_new_tokens=max_new_tokens or (96 if mode == "next-call" else 512),
        stop_at_first_call=mode == "next-call",
        batch_size=batch_size,
        repetition_penalty=repetition_penalty,
        temperature=temperature,
        seed=seed,
    )


def latency_summary(latencies: Sequence[float], batch_sizes: Sequence[int | None]) -> dict[str, Any]:
    """Per-request latency (each request's batch start to its own last token): mean, p50, p95."""
    import numpy as np

    if not latencies:
        return {"mean_s": None, "p50_s": None, "p95_s": None, "measured_at_batch_1": None}
    values = np.asarray(latencies, dtype=float)
    known = [b for b in batch_sizes if b is not None]
    return {
        "mean_s": round(float(values.mean()), 4),
        "p50_s": round(float(np.percentile(values, 50)), 4),
        "p95_s": round(float(np.percentile(values, 95)), 4),
        "measured_at_batch_1": bool(known) and len(known) == len(batch_sizes) and max(known) == 1,
        "max_batch_size": max(known) if known else None,
    }


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
        "latency": latency_summary(latency, [r.get(f"{prefix}batch_size") for r in rows]),
        "tokens_per_s": completion / sum(latency) if latency and sum(latency) else None,
        "mode": mode,
    }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def _chunk(config: GenerationConfig) -> int:
    """Examples per resumable chunk: a few batches."""
    return max(config.batch_size, 1) * 4


def evaluate(
    backend: Backend,
    examples: Sequence[Example],
    output: Path,
    registry: Registry,
    mode: str,
    config: GenerationConfig,
    adapter: bool = True,
    *,
    fingerprint: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Score one model (the adapter when the backend has one) on every example.

    ``fingerprint`` (the run's settings) is stored in the summary and, as a short id, in every
    row: a rerun into the same file resumes only when it matches.
    """
    fingerprint = {"command": "eval", **(fingerprint or {})}
    run_id = fingerprint_id(fingerprint)

    def make_rows(batch: list[Example]) -> list[dict[str, Any]]:
        generations = backend.generate([e.request for e in batch], config, adapter=adapter)
        rows = []
        for example, generation in zip(batch, generations):
            row = {**_base_row(example), **score(example, generation, registry, mode)}
            row["accuracy"] = primary(row["metrics"], mode)
            rows.append(row)
        return rows

    started = time.time()
    rows = run_examples(
        examples, output, make_rows, _chunk(config), f"eval ({backend.name})", run_id, overwrite
    )
    summary = {
        **summarise(rows, mode),
        "backend": backend.name,
        "dtype": getattr(backend, "dtype", None),
        "adapter": adapter and backend.has_adapter,
        "seconds": round(time.time() - started, 1),
        "run": run_id,
        "fingerprint": fingerprint,
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
    *,
    fingerprint: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Base and adapter on the same examples from one loaded model, with paired statistics.

    A judge may add rows' fields (``Verdict.extra``) and summary fields (``judge.summarise(rows)``),
    and its ``fingerprint()`` (e.g. judge model and base URL) joins the run's fingerprint. Resumed
    rows whose verdict is ``error`` are judged again from their kept answers (nothing regenerated).
    """
    if not backend.has_adapter:
        raise InputError("compare needs an adapter (--lora_dir)")
    identity = judge.fingerprint() if hasattr(judge, "fingerprint") else {}
    fingerprint = {"command": "compare", "judge": judge.name, **identity, **(fingerprint or {})}
    run_id = fingerprint_id(fingerprint)
    fresh: set[str] = set()  # ids judged by this run

    def judged(example: Example, sb: dict[str, Any], sl: dict[str, Any]) -> dict[str, Any]:
        verdict = judge.compare(example, sb, sl, mode)
        fresh.add(example.id)
        return {
            "base_score": verdict.base_score,
            "lora_score": verdict.lora_score,
            "winner": verdict.winner,
            "comparison_reason": verdict.reason,
            **(getattr(verdict, "extra", None) or {}),
        }

    def make_rows(batch: list[Example]) -> list[dict[str, Any]]:
        requests = [e.request for e in batch]
        base = backend.generate(requests, config, adapter=False)
        lora = backend.generate(requests, config, adapter=True)
        rows = []
        for example, b, lo in zip(batch, base, lora):
            sb, sl = score(example, b, registry, mode), score(example, lo, registry, mode)
            row = {**_base_row(example), **judged(example, sb, sl), "base_pred": b.text, "lora_pred": lo.text}
            for key, value in sb.items():
                row[f"base_{key}"] = value
            for key, value in sl.items():
                row[f"lora_{key}"] = value
            rows.append(row)
        return rows

    def rejudge(rows: list[dict[str, Any]]) -> None:
        """Judge resumed error rows again from their stored answers, then rewrite the file."""
        stale = [r for r in rows if r.get("winner") == "error" and r["id"] not in fresh]
        if not stale:
            return
        console.print(f"judging again: {len(stale)} resumed row(s) whose verdict was an error")
        by_id = {e.id: e for e in examples}
        for row in stale:
            sides = [
                {k.removeprefix(p): v for k, v in row.items() if k.startswith(p)} for p in ("base_", "lora_")
            ]
            for key in [k for k in row if k.startswith("judge_")]:  # the failed verdict's own fields
                del row[key]
            row.update(judged(by_id[row["id"]], *sides))
        write_jsonl(output, rows)

    started = time.time()
    rows = run_examples(
        examples, output, make_rows, _chunk(config), f"compare ({backend.name})", run_id, overwrite
    )
    rejudge(rows)
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
        "run": run_id,
        "fingerprint": fingerprint,
    }
    if hasattr(judge, "summarise"):
        summary.update(judge.summarise(rows))
    write_json(output.with_suffix(".summary.json"), summary)
    return summary


# --------------------------------------------------------------------------- from settings
def run_fingerprint(settings: EvalSettings, registry: Registry, prompt_form: str) -> dict[str, Any]:
    """Everything that changes a run's answers: model and adapter identity, mode, backend, dtype,
    registry, prompt options, generation settings and the input file's hash."""
    return {
        "base_model": settings.base_model,
        "adapter": adapter_identity(settings.lora_dir, settings.backend),
        "lora_name": settings.lora_name,
        "mode": settings.mode,
        "backend": settings.backend,
        "dtype": settings.dtype,
        "registry": registry.fingerprint(),
        "tool_style": settings.tool_style,
        "prompt_form": prompt_form,
        "constrained": settings.constrained,
        "max_new_tokens": settings.resolved_max_new_tokens(),
        "temperature": settings.temperature,
        "repetition_penalty": settings.repetition_penalty,
        "seed": settings.seed,
        "test_file_sha256": file_sha256(settings.test_file),
    }


def resolve_prompt_form(settings: EvalSettings) -> str:
    """``auto``: the form the adapter was trained on, else ``steps``."""
    if settings.prompt_form != "auto":
        return settings.prompt_form
    return "conversation" if adapter_form(settings.lora_dir) == "conversation" else "steps"


@dataclass
class EvalRun:
    """What ``eval`` and ``compare`` set up from their settings before generating."""

    registry: Registry
    examples: list[Example]
    config: GenerationConfig
    fingerprint: dict[str, Any]


def prepare(settings: EvalSettings) -> EvalRun:
    """Registry, examples, generation settings and fingerprint (checked before any model loads)."""
    from specdecode.registry import load_registry

    check_output_file(settings.output_file)
    registry = load_registry(settings.registry)
    prompt_form = resolve_prompt_form(settings)
    options = PromptOptions(tool_style=settings.tool_style)
    examples = load_examples(
        settings.test_file,
        settings.mode,
        registry,
        options,
        settings.skip_invalid,
        prompt_form=prompt_form,
        constrained=settings.constrained,
    )
    if settings.limit:
        examples = examples[: settings.limit]
    config = generation_config(
        settings.mode,
        settings.resolved_max_new_tokens(),
        settings.batch_size,
        settings.repetition_penalty,
        settings.temperature,
        settings.seed,
    )
    fingerprint = run_fingerprint(settings, registry, prompt_form)
    return EvalRun(registry, examples, config, fingerprint)


def backend_for(settings: EvalSettings) -> Backend:
    """The generation backend the settings name."""
    from specdecode.evaluate.backends import make_backend

    extra: dict[str, Any] = {}
    if settings.chat_template_kwargs:
        extra["chat_template_kwargs"] = {"enable_thinking": False}
    return make_backend(
        settings.backend,
        settings.base_model,
        settings.lora_dir,
        base_url=settings.base_url,
        lora_name=settings.lora_name,
        api_key_env=settings.api_key_env,
        trust_remote_code=settings.trust_remote_code,
        dtype=settings.dtype,
        **extra,
    )


def run_eval(settings: EvalSettings) -> dict[str, Any]:
    """``specdecode eval``: one model on every example; returns the summary."""
    run = prepare(settings)
    backend = backend_for(settings)
    return evaluate(
        backend,
        run.examples,
        settings.output_file,
        run.registry,
        settings.mode,
        run.config,
        adapter=True,
        fingerprint=run.fingerprint,
        overwrite=settings.overwrite,
    )


def run_compare(settings: CompareSettings) -> dict[str, Any]:
    """``specdecode compare``: base vs adapter with a judge; returns the summary."""
    from specdecode.evaluate import make_judge

    judge = make_judge(settings.judge, **_judge_settings(settings))  # a bad judge fails before loading
    run = prepare(settings)
    backend = backend_for(settings)
    return compare(
        backend,
        run.examples,
        settings.output_file,
        run.registry,
        settings.mode,
        run.config,
        judge,
        fingerprint=run.fingerprint,
        overwrite=settings.overwrite,
    )


def _judge_settings(settings: CompareSettings) -> dict[str, Any]:
    given = {
        "model": settings.judge_model,
        "base_url": settings.judge_base_url,
        "api_key_env": settings.judge_api_key_env,
    }
    return {k: v for k, v in given.items() if v is not None}
