"""Read one JSON object out of a model's reply, repairing only what is safe to repair.

Safe repairs: a BOM, Markdown code fences, prose before or after the outermost object,
and trailing commas before ``}`` or ``]`` (outside strings). Nothing else is guessed:
a reply that still does not parse is reported with its raw text kept.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\r?\n?(.*?)\r?\n?[ \t]*```", re.S)


class ReplyParseError(ValueError):
    """The reply holds no JSON object even after the safe repairs."""


def _strip_trailing_commas(text: str) -> str:
    out: list[str] = []
    in_string = escaped = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch == ",":
            j = i + 1
            while j < len(text) and text[j] in " \t\r\n":
                j += 1
            if j < len(text) and text[j] in "}]":
                i += 1
                continue
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _outer_object(text: str) -> str | None:
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else None


def parse_reply(text: str) -> tuple[dict[str, Any], list[str]]:
    """``(object, repairs applied)``; raises ReplyParseError with a one-line reason."""
    repairs: list[str] = []
    candidate = text.strip().lstrip("\ufeff")
    if not candidate:
        raise ReplyParseError("empty reply")
    fence = _FENCE.search(candidate)
    if fence:
        candidate = fence.group(1).strip()
        repairs.append("code_fence")
    error = ""
    for attempt in range(3):
        try:
            obj = json.loads(candidate)
        except json.JSONDecodeError as exc:
            error = f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
        else:
            if isinstance(obj, dict):
                return obj, repairs
            raise ReplyParseError(f"expected a JSON object, got {type(obj).__name__}")
        if attempt == 0:
            outer = _outer_object(candidate)
            if outer is None:
                break
            if outer != candidate:
                candidate = outer
                repairs.append("surrounding_text")
        elif attempt == 1:
            fixed = _strip_trailing_commas(candidate)
            if fixed == candidate:
                break
            candidate = fixed
            repairs.append("trailing_commas")
    raise ReplyParseError(f"not valid JSON: {error}")
