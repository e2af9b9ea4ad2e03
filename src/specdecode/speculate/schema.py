"""Schema-true calls: every predicted call is cast to its tool's JSON schema, or dropped.

A guess that breaks its tool's schema can never be the actor's call, and an executor must never
launch it. Every predictor's candidates pass through :class:`CallGuard` before they are scored or
launched: values are cast to the declared type where the cast is exact (``"3"`` → ``3`` for an
integer, ``19122`` → ``"19122"`` for a string, a case-only difference to the enum's own spelling,
a single value → a one-item array), unknown keys are dropped, and a call that still misses a
required argument or breaks the schema (``jsonschema``) is dropped. Strings are never re-cased or
trimmed of their content: a copied span keeps its original text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from specdecode.records import ToolCall, ToolSpec

_INT = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
INVALID = object()  # the marker of a value that cannot be cast


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, list):
        return [str(k) for k in kind]
    return [str(kind)] if kind else []


def _enum_value(value: Any, enum: list[Any]) -> Any:
    for e in enum:
        if value == e and isinstance(value, bool) == isinstance(e, bool):
            return e
    if isinstance(value, str):
        folded = " ".join(value.split()).casefold()
        matches = [e for e in enum if isinstance(e, str) and " ".join(e.split()).casefold() == folded]
        if len(matches) == 1:
            return matches[0]
        number = _NUMBER.match(value.strip())
        for e in enum:  # a number written as text
            if number and isinstance(e, (int, float)) and not isinstance(e, bool) and float(value) == e:
                return e
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for e in enum:
            if isinstance(e, str) and _NUMBER.match(e) and float(e) == value:
                return e
    return INVALID


def _cast_scalar(value: Any, kind: str) -> Any:
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return INVALID
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float) and math.isfinite(value):
            return str(int(value)) if value.is_integer() else repr(value)
        return INVALID
    if kind == "integer":
        if isinstance(value, bool):
            return INVALID
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT.match(value.strip()):
            return int(value.strip())
        return INVALID
    if kind == "number":
        if isinstance(value, bool):
            return INVALID
        if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
            return value
        if isinstance(value, str) and _NUMBER.match(value.strip()):
            number = float(value.strip())
            if not math.isfinite(number):
                return INVALID
            return int(number) if _INT.match(value.strip()) else number
        return INVALID
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return INVALID
    if kind == "null":
        return None if value is None else INVALID
    return INVALID


def _has_type(value: Any, kind: str) -> bool:
    """Whether ``value`` already is of JSON Schema type ``kind`` (no cast)."""
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    return checks.get(kind, lambda v: True)(value)


def cast_value(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` cast to ``schema`` (``INVALID`` when it cannot be, exactly)."""
    if not isinstance(schema, dict):
        return value
    if isinstance(schema.get("enum"), list):
        value = _enum_value(value, schema["enum"])
        # the enum's own member, if its type is allowed (never re-cast out of the enum)
        kinds = _types(schema)
        if value is INVALID or (kinds and not any(_has_type(value, k) for k in kinds)):
            return INVALID
        return value
    if "const" in schema and value != schema["const"]:
        return INVALID
    kinds = _types(schema)
    if not kinds:
        return value
    for kind in kinds:
        if kind == "array":
            cast = cast_array(value, schema)
        elif kind == "object":
            cast = cast_object(value, schema) if isinstance(value, dict) else INVALID
            if cast is None:
                cast = INVALID
        else:
            cast = _cast_scalar(value, kind)
        if cast is not INVALID:
            return cast
    return INVALID


def cast_array(value: Any, schema: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return INVALID
    if not isinstance(value, (list, tuple)):
        value = [value]  # one value where a list is expected: a one-item list
    items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
    out = [cast_value(v, items) for v in value]
    return INVALID if any(v is INVALID for v in out) else out


def cast_object(arguments: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any] | None:
    """Arguments cast to an object schema: unknown keys dropped, values cast; None when a required
    argument is missing or cannot be cast."""
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = [r for r in schema.get("required", []) or [] if isinstance(r, str)]
    out: dict[str, Any] = {}
    for key, value in arguments.items():
        if props and key not in props:
            continue  # an argument the tool does not take
        if not props and schema.get("additionalProperties") is False:
            continue
        cast = cast_value(value, props.get(key, {}))
        if cast is INVALID:
            if key in required:
                return None
            continue  # an optional argument that cannot be right: left out
        out[key] = cast
    if any(key not in out for key in required):
        return None
    return out


def cast_arguments(arguments: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any] | None:
    """Each argument cast to its property's schema (arguments without one kept as they are);
    None when one cannot be cast."""
    out = {}
    for arg, value in arguments.items():
        cast = cast_value(value, properties[arg]) if arg in properties else value
        if cast is INVALID:
            return None
        out[arg] = cast
    return out


class CallGuard:
    """Casts calls to their tools' schemas; ``check`` returns the valid call or None."""

    def __init__(self, tools: Iterable[ToolSpec]):
        from jsonschema import Draft202012Validator

        self.specs = {t.name: t for t in tools}
        self._validators = {name: Draft202012Validator(t.parameters) for name, t in self.specs.items()}

    def check(self, call: ToolCall) -> ToolCall | None:
        spec = self.specs.get(call.tool_name)
        if spec is None:
            return None
        arguments = cast_object(call.arguments, spec.parameters)
        if arguments is None:
            return None
        if any(True for _ in self._validators[call.tool_name].iter_errors(arguments)):
            return None
        if arguments == call.arguments:
            return call
        return ToolCall(tool_name=call.tool_name, arguments=arguments)

    def filter(self, calls: Sequence[ToolCall]) -> tuple[list[ToolCall], int]:
        """The valid calls, in order (cast), and how many were dropped."""
        valid = [c for c in (self.check(call) for call in calls) if c is not None]
        return valid, len(calls) - len(valid)

    def valid(self, call: ToolCall) -> bool:
        """Whether ``call`` is valid for its tool exactly as it is (nothing to cast)."""
        checked = self.check(call)
        return checked is not None and checked.arguments == call.arguments
