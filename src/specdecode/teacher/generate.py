"""``specdecode traces generate``: questions → teacher traces, concurrent and resumable.

Files (``OUT`` is the ``--out`` path):

* ``OUT`` — one TraceRecord per question that the teacher answered with a parseable trace,
  in input order, with extra fields ``valid`` (every call names a known tool and fits its
  schema), ``issues`` (what is wrong otherwise), ``repairs`` (the safe JSON repairs applied),
  ``teacher`` (provider and model), ``teacher_settings`` (the run's fingerprint, below) and
  ``gold_answer`` (when the question had one).
* ``OUT`` with ``.errors.jsonl`` — one row per item that finally failed: ``id``, ``question``,
  ``error_kind`` (budget, permanent, transient or parse), ``error`` and, for replies that did
  not parse, the ``raw`` reply text.
* ``OUT`` with ``.summary.json`` — valid / invalid / failed counts, calls made, retries,
  cache hits and misses.

A rerun skips the ids already in ``OUT`` and asks again for the failed ones. Rows are
appended (and flushed) as they finish, so a killed run loses at most the requests in flight;
the final files are rewritten atomically in input order. Every row carries the settings that
made it (``teacher_settings``: provider, model, base URL, registry hash, tool style, JSON mode,
temperature, seed, max tokens; never a key): a rerun with other settings stops with a one-line
error naming what differs, unless ``overwrite`` replaces the file.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from specdecode.errors import InputError
from specdecode.jsonl import append_jsonl, describe_validation_error, read_records, write_json, write_jsonl
from specdecode.prompts import ToolStyle, teacher_messages, trace_schema
from specdecode.records import QuestionRecord, TraceRecord
from specdecode.registry import Registry
from specdecode.teacher.cache import public_url
from specdecode.teacher.client import CallFailed, LLMClient
from specdecode.teacher.jsonfix import ReplyParseError, parse_reply
from specdecode.teacher.validate import TraceValidator

console = Console(stderr=True)


def side_path(out: Path, kind: str) -> Path:
    """``traces.jsonl`` → ``traces.errors.jsonl`` / ``traces.summary.json``."""
    return out.with_suffix(f".{kind}")


def load_questions(path: str | Path, split: str = "validation") -> list[QuestionRecord]:
    """A questions JSONL (QuestionRecord; trace files work too) or a local GAIA folder."""
    path = Path(path)
    if path.is_dir():
        from specdecode.gaia import load_local

        return load_local(path, split)
    records = read_records(path, QuestionRecord)
    if not records:
        raise InputError("file has no questions", path)
    return records


def _differences(old: Any, new: dict[str, Any]) -> str:
    """What changed between a row's settings and this run's, e.g. ``model 'a' → 'b'``."""
    if not isinstance(old, dict):
        return "its rows record no settings: written by an older version or another command"
    changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(f"{k} {old.get(k)!r} → {new.get(k)!r}" for k in changed)


def _resume(path: Path, settings: dict[str, Any], overwrite: bool = False) -> dict[str, dict[str, Any]]:
    """Rows already written with these ``settings``, by id (a torn last line from a kill is ignored).

    A row made with other settings stops the command (InputError naming what differs), unless
    ``overwrite``: then nothing is kept.
    """
    done: dict[str, dict[str, Any]] = {}
    if path.is_dir():
        raise InputError("is a directory, expected a traces file (--out)", path)
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not (isinstance(row, dict) and isinstance(row.get("id"), str)):
            continue
        if row.get("teacher_settings") != settings:
            if overwrite:
                console.print(f"--overwrite: replacing the traces in {path}", highlight=False)
                return {}
            differs = _differences(row.get("teacher_settings"), settings)
            raise InputError(
                f"holds traces made with other settings ({differs}); "
                "use --overwrite to replace them, or another --out",
                path,
            )
        done[row["id"]] = row
    return done


def _issue_kind(issue: str) -> str:
    """An issue without its step: ``unknown tool 'x'``, or ``bad arguments: TOOL``."""
    rest = issue.split(": ", 1)[-1]
    return rest if rest.startswith("unknown tool") else f"bad arguments: {rest.split(':', 1)[0]}"


def _answer_text(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


class TraceGenerator:
    """Asks the teacher for one question's trace and turns the reply into a row."""

    def __init__(self, client: LLMClient, registry: Registry, tool_style: ToolStyle = "json"):
        self.client = client
        self.registry = registry
        self.tool_style = tool_style
        self.validator = TraceValidator(registry)  # a broken registry schema fails before any call
        self.settings = self.fingerprint()

    def fingerprint(self) -> dict[str, Any]:
        """Everything that decides a trace besides the question (never the API key)."""
        config, generation = self.client.config, self.client.config.generation
        return {
            "provider": config.provider,
            "model": config.model,
            "base_url": public_url(config.base_url),
            "registry": self.registry.fingerprint(),
            "tool_style": self.tool_style,
            "json_mode": generation.json_mode,
            "temperature": generation.temperature,
            "seed": generation.seed,
            "max_tokens": generation.max_tokens,
        }

    def row(self, question: QuestionRecord) -> tuple[str, dict[str, Any]]:
        """``("trace", row)`` or ``("error", row)``; never raises for a failed item."""
        offered = (question.model_extra or {}).get("tools")
        offered = offered if isinstance(offered, list) and offered else None
        tools = self.registry.subset(offered)
        messages = teacher_messages(question.question, tools, self.tool_style)
        schema = trace_schema([t.name for t in tools])
        head = {"id": question.id, "question": question.question}
        if question.level is not None:
            head["level"] = question.level
        try:
            completion = self.client.complete(messages, schema)
        except CallFailed as exc:
            return "error", {**head, "error_kind": exc.kind, "error": exc.message, "attempts": exc.attempts}
        try:
            obj, repairs = parse_reply(completion.text)
            record = TraceRecord.model_validate(
                {
                    **head,
                    "trace": obj.get("trace"),
                    "final_answer": _answer_text(obj.get("final_answer")),
                    "tools": offered,
                }
            )
        except (ReplyParseError, ValidationError) as exc:
            reason = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
            if self.client.cache is not None:  # a rerun asks again instead of replaying a bad reply
                self.client.cache.forget(self.client.key(messages, schema))
            return "error", {**head, "error_kind": "parse", "error": reason, "raw": completion.text}
        issues = self.validator.issues(record, offered)
        row = record.model_dump(mode="json", exclude_none=True)
        row.update(
            valid=not issues,
            issues=issues,
            repairs=repairs,
            teacher={"provider": self.client.config.provider, "model": self.client.config.model},
            teacher_settings=self.settings,
        )
        if question.final_answer is not None:
            row["gold_answer"] = question.final_answer
        return "trace", row


def generate_traces(
    questions: Sequence[QuestionRecord],
    generator: TraceGenerator,
    out: Path,
    show_progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run every pending question through the teacher; write traces, errors and the summary.

    Rows already in ``out`` are kept only when the generator's settings made them; other
    settings stop the run (InputError) unless ``overwrite``, which replaces the file.
    """
    out = Path(out)
    errors_path, summary_path = side_path(out, "errors.jsonl"), side_path(out, "summary.json")
    ids = [q.id for q in questions]
    done = _resume(out, generator.settings, overwrite)
    wanted = set(ids)
    # Paid-for rows of other questions (an earlier, larger input) are kept, after the others.
    others = [row for rid, row in done.items() if rid not in wanted]
    pending = [q for q in questions if q.id not in done]
    if len(done) > len(others):
        console.print(
            f"resuming: {len(done) - len(others)} of {len(questions)} traces already in {out}",
            highlight=False,
        )
    if others:
        console.print(
            f"keeping {len(others)} trace(s) in {out} whose ids are not in the questions", highlight=False
        )
    write_jsonl(out, [done[i] for i in ids if i in done] + others)  # drops a torn last line before appending
    write_jsonl(errors_path, [])
    failed: dict[str, dict[str, Any]] = {}
    started = time.time()
    counts: Counter[str] = Counter()
    concurrency = generator.client.config.concurrency
    with (
        Progress(
            TextColumn("traces"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            console=console,
            disable=not show_progress,
        ) as progress,
        ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="teacher") as pool,
    ):
        task = progress.add_task("traces", total=len(questions), completed=len(done), status="")
        futures = [pool.submit(generator.row, q) for q in pending]
        try:
            for future in as_completed(futures):
                kind, row = future.result()
                if kind == "trace":
                    append_jsonl(out, row)
                    done[row["id"]] = row
                    counts["valid" if row["valid"] else "invalid"] += 1
                else:
                    append_jsonl(errors_path, row)
                    failed[row["id"]] = row
                    counts["failed"] += 1
                status = f"valid {counts['valid']} · invalid {counts['invalid']} · failed {counts['failed']}"
                progress.update(task, advance=1, status=status)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    write_jsonl(out, [done[i] for i in ids if i in done] + others)
    if failed:
        write_jsonl(errors_path, [failed[i] for i in ids if i in failed])
    else:
        errors_path.unlink(missing_ok=True)
    rows = [done[i] for i in ids if i in done]
    issues = Counter(_issue_kind(issue) for r in rows for issue in r.get("issues", []))
    summary = {
        "n": len(questions),
        "traces": len(rows),
        "valid": sum(1 for r in rows if r.get("valid", True)),
        "invalid": sum(1 for r in rows if not r.get("valid", True)),
        "failed": len(failed),
        "resumed": len(questions) - len(pending),
        "error_kinds": dict(Counter(r["error_kind"] for r in failed.values())),
        "issues": dict(issues.most_common(20)),
        "repaired": sum(1 for r in rows if r.get("repairs")),
        "client": generator.client.stats(),
        "fingerprint": generator.settings,
        "out": str(out),
        "errors_file": str(errors_path) if failed else None,
        "seconds": round(time.time() - started, 2),
    }
    write_json(summary_path, summary)
    return summary
