"""The one bounded reader of user input files: every JSON, JSONL and YAML file a command reads
goes through here.

* only regular files are read where a file is expected: a FIFO, a device (``/dev/zero``), a
  socket or a symlink loop is refused with one line instead of hanging or eating memory;
* a JSON value is bounded: nesting depth (``MAX_DEPTH``), integer size (64-bit), line length
  (``MAX_LINE_BYTES``); ``NaN``/``Infinity`` and numbers that overflow to them are refused, and
  so are lone UTF-16 surrogates (``"\\udc00"``: not Unicode, it cannot be written back);
* every refusal is an :class:`~specdecode.errors.InputError` naming the file, the line and the
  field (``trace[0].actor_seconds: NaN is not a finite number``): exit code 2, no traceback.

The limits are module constants; ``SPECDECODE_MAX_LINE_BYTES`` lifts the line length.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import math
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from specdecode.errors import InputError

MAX_DEPTH = 64  # objects and arrays nested deeper than this are refused
INT_RANGE = (-(2**63), 2**64)  # integers outside [low, high) are refused
MAX_LINE_BYTES = 256 * 2**20  # the default longest line; SPECDECODE_MAX_LINE_BYTES sets another


def max_line_bytes() -> int:
    """The longest line a reader accepts: ``SPECDECODE_MAX_LINE_BYTES`` or ``MAX_LINE_BYTES``."""
    try:
        return max(1, int(os.environ.get("SPECDECODE_MAX_LINE_BYTES", MAX_LINE_BYTES)))
    except ValueError:
        return MAX_LINE_BYTES


# A JSON escape of a UTF-16 surrogate: the only way a lone one gets into a decoded string
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Refused:
    """What a number hook returns for a number it refuses; found (with its field) afterwards."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large input is decoded: parsing makes millions
    of objects and no cycles, and the collector's passes over them make a big read a third
    slower (the OTLP import of 50k spans: 6.3 s → 4.1 s of CPU). Nested uses are fine."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --------------------------------------------------------------------------- files
def _describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


def require_file(path: str | Path, what: str = "file") -> Path:
    """``path`` if it is a regular file (after following links), else a one-line InputError:
    missing, a directory, a FIFO or device, a symlink loop, unreadable."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError(f"{what} not found", path) from None
    except OSError as exc:
        raise InputError(_describe_os_error(exc), path) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"is a directory, expected a {what}", path)
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
        raise InputError(f"is {kind}, not a regular file: expected a {what}", path)
    return path


def is_regular_file(path: str | Path) -> bool:
    """True for a regular file (after following links); False for anything else, never raising."""
    try:
        return stat.S_ISREG(Path(path).stat().st_mode)
    except (OSError, ValueError):
        return False


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    """The bytes of a regular file (a UTF-8 byte-order mark removed); one-line errors."""
    path = require_file(path, what)
    try:
        return path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    except OSError as exc:
        raise InputError(_describe_os_error(exc), path) from None


def read_text(path: str | Path, what: str = "file") -> str:
    """The text of a regular UTF-8 file; one-line errors naming the byte that is not UTF-8."""
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"invalid UTF-8 at byte {exc.start}", path, line) from None


def iter_lines(path: str | Path, what: str = "file") -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes)`` of each non-blank line of a regular file (CR stripped), each at
    most ``MAX_LINE_BYTES`` long."""
    data = read_bytes(path, what)
    limit = max_line_bytes()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        if len(raw) > limit:
            raise InputError(
                f"line of {len(raw)} bytes is longer than {limit} "
                "(SPECDECODE_MAX_LINE_BYTES lifts the limit)",
                path,
                number,
            )
        yield number, raw


# --------------------------------------------------------------------------- JSON values
def _field(node: tuple[Any, Any] | None) -> str:
    """A linked path ``(parent, key)`` → ``trace[0].action.arguments``."""
    parts: list[Any] = []
    while node is not None:
        node, key = node
        parts.append(key)
    parts.reverse()
    text = ""
    for part in parts[:12]:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text + ("…" if len(parts) > 12 else "")


def _scalar_problem(item: Any, check_strings: bool) -> str | None:
    if isinstance(item, _Refused):
        return item.reason
    if isinstance(item, float):
        return None if math.isfinite(item) else f"{item} is not a finite number"
    if isinstance(item, int) and not isinstance(item, bool):
        return None if INT_RANGE[0] <= item < INT_RANGE[1] else "integer out of range (at most 64 bits)"
    if check_strings and isinstance(item, str) and _SURROGATE.search(item):
        return "lone surrogate (invalid Unicode) in a string"
    return None


def find_problem(value: Any, check_strings: bool = True) -> str | None:
    """The first problem of a decoded JSON/YAML value, as ``field: what is wrong``: a refused
    number, a non-finite float, an integer out of range, a lone surrogate, nesting deeper than
    ``MAX_DEPTH``. Iterative, so any depth is safe to check."""
    problem = _scalar_problem(value, check_strings)
    if problem is not None:
        return problem
    stack: list[tuple[Any, int, Any]] = [(value, 0, None)]
    while stack:
        item, depth, node = stack.pop()
        if isinstance(item, dict):
            pairs: Any = item.items()
        elif isinstance(item, (list, tuple)):
            pairs = enumerate(item)
        else:
            continue
        if depth >= MAX_DEPTH:
            return f"{_field(node) or 'the document'}: nested deeper than {MAX_DEPTH} levels"
        for key, inner in pairs:
            if check_strings and isinstance(key, str) and _SURROGATE.search(key):
                shown = key.encode("utf-8", "backslashreplace").decode("utf-8")
                return f"{_field((node, shown))}: lone surrogate (invalid Unicode) in a key"
            if isinstance(inner, (dict, list, tuple)):
                stack.append((inner, depth + 1, (node, key if isinstance(key, (str, int)) else str(key))))
                continue
            problem = _scalar_problem(inner, check_strings)
            if problem is not None:
                return f"{_field((node, key if isinstance(key, (str, int)) else str(key)))}: {problem}"
    return None


_CONTAINERS = (dict, list)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether a container sits ``limit`` or more levels below the top one (as
    :func:`find_problem` counts): level by level, containers only, the cheap check for a large
    document; :func:`find_problem` then names the field."""
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        if depth >= limit:
            return True
        below: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            below += [child for child in children if type(child) in _CONTAINERS]
        level, depth = below, depth + 1
    return False


def _number_hooks(flags: list[bool]) -> dict[str, Any]:
    def parse_int(text: str) -> Any:
        if len(text) > 21:  # more digits than any 64-bit integer (and int() would refuse 4300+)
            flags.append(True)
            return _Refused(f"integer of {len(text.lstrip('-'))} digits is out of range (at most 64 bits)")
        value = int(text)
        if not INT_RANGE[0] <= value < INT_RANGE[1]:
            flags.append(True)
            return _Refused("integer out of range (at most 64 bits)")
        return value

    def parse_float(text: str) -> Any:
        value = float(text)
        if not math.isfinite(value):
            flags.append(True)
            return _Refused(f"{text} overflows: not a finite number")
        return value

    def parse_constant(text: str) -> Any:
        flags.append(True)
        return _Refused(f"{text} is not a finite number (JSON has no {text})")

    return {"parse_int": parse_int, "parse_float": parse_float, "parse_constant": parse_constant}


def loads(data: str | bytes, path: str | Path | None = None, line: int | None = None) -> Any:
    """One JSON document, bounded (see the module docstring); InputError naming ``path``,
    ``line`` and the field otherwise."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"invalid UTF-8 at byte {exc.start}", path, line) from None
    else:
        text = data
    flags: list[bool] = []
    try:
        value = json.loads(text, **_number_hooks(flags))
    except RecursionError:
        raise InputError(f"invalid JSON: nested deeper than {MAX_DEPTH} levels", path, line) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", path, line) from None
    surrogates = "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None
    deep = text.count("[") + text.count("{") > MAX_DEPTH and _deeper_than(value, MAX_DEPTH)
    if flags or surrogates or deep:
        problem = find_problem(value, check_strings=surrogates)
        if problem is not None:
            raise InputError(problem, path, line)
    return value


def read_json(path: str | Path, what: str = "file") -> Any:
    """One JSON document from a regular file, bounded."""
    return loads(read_bytes(path, what), path)


def check_value(value: Any, path: str | Path | None = None, line: int | None = None) -> Any:
    """``value`` (from YAML or built in code) if it passes the same bounds, else InputError."""
    problem = find_problem(value)
    if problem is not None:
        raise InputError(problem, path, line)
    return value


def load_yaml(path: str | Path, what: str = "file") -> Any:
    """A YAML file (regular, UTF-8), bounded like JSON; a syntax error names its line."""
    import yaml

    text = read_text(path, what)
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise InputError(f"invalid YAML: nested deeper than {MAX_DEPTH} levels", path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(
            f"invalid YAML: {getattr(exc, 'problem', None) or exc}", path, mark.line + 1 if mark else None
        ) from None
    return check_value(data, path)


__all__ = [
    "MAX_DEPTH",
    "MAX_LINE_BYTES",
    "bulk",
    "check_value",
    "find_problem",
    "is_regular_file",
    "iter_lines",
    "load_yaml",
    "loads",
    "max_line_bytes",
    "read_bytes",
    "read_json",
    "read_text",
    "require_file",
]
