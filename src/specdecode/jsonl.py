"""Strict, helpful JSONL reading and atomic writing.

A bad line stops the command with ``path:line: what is wrong`` (exit code 2) unless
``skip_invalid`` is set, in which case bad lines are counted and reported once.
Byte-order marks, CRLF line ends, blank lines and extra fields are accepted. Lines are read by
the bounded reader (:mod:`specdecode.inputs`: regular files only, bounded depth, numbers and
line length, finite numbers, valid Unicode); writes go through :mod:`specdecode.outputs`
(atomic, redacted) and are always valid JSON: a non-finite float is written as ``null``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from rich.console import Console

from specdecode.errors import InputError
from specdecode.inputs import bulk, iter_lines, loads
from specdecode.outputs import atomic_path, redact

M = TypeVar("M", bound=BaseModel)
stderr = Console(stderr=True)


_UNION_TAGS = ("int", "float", "str", "bool", "none", "list", "dict")


def describe_validation_error(exc: ValidationError) -> str:
    """One line for the first problem pydantic found, naming the field."""
    err = exc.errors()[0]
    parts = list(err["loc"])
    while parts and parts[-1] in _UNION_TAGS:  # pydantic names the union member it tried last
        parts.pop()
    loc = ""
    for part in parts:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    if err["type"] == "missing":
        return f"missing field '{loc}'"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


@dataclass
class ReadReport:
    """What a read kept and skipped; ``lines[i]`` is the line number of the i-th kept record."""

    path: Path
    kept: int = 0
    skipped: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def _parse_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | InputError]]:
    """Yield ``(line_number, object or the error for that line)`` for each non-blank line."""
    for number, raw in iter_lines(path):
        try:
            obj = loads(raw, path, number)
        except InputError as exc:
            yield number, exc
            continue
        if isinstance(obj, dict):
            yield number, obj
        else:
            yield number, InputError(f"expected a JSON object, got {type(obj).__name__}", path, number)


def iter_json_lines(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; raise InputError on a bad line."""
    for number, item in _parse_lines(Path(path)):
        if isinstance(item, InputError):
            raise item
        yield number, item


def read_records(
    path: str | Path,
    model: type[M],
    *,
    skip_invalid: bool = False,
    unique_ids: bool = True,
    report: ReadReport | None = None,
) -> list[M]:
    """Read and validate every line of ``path`` as ``model``.

    Raises InputError naming the file and line, or with ``skip_invalid`` counts the bad
    lines in ``report`` and prints one warning.
    """
    path = Path(path)
    report = report if report is not None else ReadReport(path)
    records: list[M] = []
    seen: dict[str, int] = {}
    with bulk():
        _validate_lines(path, model, records, seen, skip_invalid, unique_ids, report)
    report.kept = len(records)
    if report.skipped:
        stderr.print(
            f"[yellow]warning:[/] skipped {len(report.skipped)} invalid line(s) in {path} "
            f"(first: {report.skipped[0]})",
            highlight=False,
            soft_wrap=True,
        )
    return records


def _validate_lines(
    path: Path,
    model: type[M],
    records: list[M],
    seen: dict[str, int],
    skip_invalid: bool,
    unique_ids: bool,
    report: ReadReport,
) -> None:
    """Validate each line into ``records`` (ids into ``seen``); bad lines raise or are counted."""
    for number, item in _parse_lines(path):
        try:
            if isinstance(item, InputError):
                raise item
            record = model.model_validate(item)
            rid = getattr(record, "id", None)
            if unique_ids and rid is not None:
                if rid in seen:
                    raise InputError(f"duplicate id {rid!r} (first on line {seen[rid]})", path, number)
                seen[rid] = number
        except ValidationError as exc:
            err = InputError(describe_validation_error(exc), path, number)
            if not skip_invalid:
                raise err from None
            report.skipped.append(err.message)
            continue
        except InputError as err:
            if not skip_invalid:
                raise
            report.skipped.append(err.message)
            continue
        records.append(record)
        report.lines.append(number)


def _to_jsonable(item: BaseModel | dict[str, Any]) -> dict[str, Any]:
    if isinstance(item, BaseModel):
        return item.model_dump(mode="json", exclude_none=True)
    return item


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_text(obj: Any, indent: int | None = None) -> str:
    """``obj`` as JSON text: valid JSON always (non-finite floats become ``null``), secrets
    redacted."""
    try:
        text = json.dumps(obj, ensure_ascii=False, indent=indent, allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere
        text = json.dumps(_finite(obj), ensure_ascii=False, indent=indent, allow_nan=False)
    return redact(text)


def write_jsonl(path: str | Path, items: Iterable[BaseModel | dict[str, Any]]) -> int:
    """Write items as JSONL atomically (temporary file + rename). Returns the count."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for item in items:
            fh.write(json_text(_to_jsonable(item)) + "\n")
            count += 1
        fh.flush()
        os.fsync(fh.fileno())
    return count


def write_json(path: str | Path, obj: Any) -> None:
    """Write one JSON document atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(obj, indent=2) + "\n", encoding="utf-8")


def append_jsonl(path: str | Path, item: BaseModel | dict[str, Any]) -> None:
    """Append one line and flush it to disk (used by resumable runs); creates missing parent folders."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", newline="\n") as fh:
        fh.write(json_text(_to_jsonable(item)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
