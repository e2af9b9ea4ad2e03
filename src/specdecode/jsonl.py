"""Strict, helpful JSONL reading and atomic writing.

A bad line stops the command with ``path:line: what is wrong`` (exit code 2) unless
``skip_invalid`` is set, in which case bad lines are counted and reported once.
Byte-order marks, CRLF line ends, blank lines and extra fields are accepted.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from rich.console import Console

from specdecode.errors import InputError

M = TypeVar("M", bound=BaseModel)
stderr = Console(stderr=True)


def describe_validation_error(exc: ValidationError) -> str:
    """One line for the first problem pydantic found, naming the field."""
    err = exc.errors()[0]
    loc = ""
    for part in err["loc"]:
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


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a JSONL file", path) from None


def _parse_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | InputError]]:
    """Yield ``(line_number, object or the error for that line)`` for each non-blank line."""
    for number, raw in enumerate(_read_bytes(path).split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            yield number, InputError(f"invalid UTF-8 at byte {exc.start}", path, number)
        except json.JSONDecodeError as exc:
            yield number, InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", path, number)
        else:
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
    report.kept = len(records)
    if report.skipped:
        stderr.print(
            f"[yellow]warning:[/] skipped {len(report.skipped)} invalid line(s) in {path} "
            f"(first: {report.skipped[0]})",
            highlight=False,
            soft_wrap=True,
        )
    return records


def _to_jsonable(item: BaseModel | dict[str, Any]) -> dict[str, Any]:
    if isinstance(item, BaseModel):
        return item.model_dump(mode="json", exclude_none=True)
    return item


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    if path.is_dir():
        raise InputError("is a directory, expected a file to write", path)
    try:  # a missing parent folder is created; a file in the way is an error
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError("cannot create the output: a parent is a file, not a folder", path) from None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_jsonl(path: str | Path, items: Iterable[BaseModel | dict[str, Any]]) -> int:
    """Write items as JSONL atomically (temporary file + rename). Returns the count."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for item in items:
            fh.write(json.dumps(_to_jsonable(item), ensure_ascii=False) + "\n")
            count += 1
        fh.flush()
        os.fsync(fh.fileno())
    return count


def write_json(path: str | Path, obj: Any) -> None:
    """Write one JSON document atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def append_jsonl(path: str | Path, item: BaseModel | dict[str, Any]) -> None:
    """Append one line and flush it to disk (used by resumable runs); creates missing parent folders."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", newline="\n") as fh:
        fh.write(json.dumps(_to_jsonable(item), ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
