"""Check a trace against a tool registry: unknown tools and arguments that break a tool's
JSON Schema (``jsonschema``, draft 2020-12) become one-line issues."""

from __future__ import annotations

from collections.abc import Sequence

from specdecode.errors import InputError
from specdecode.records import TraceRecord
from specdecode.registry import Registry


class TraceValidator:
    """``issues(record)`` → list of ``step N: …`` strings (empty when the trace is valid)."""

    def __init__(self, registry: Registry):
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        self.registry = registry
        self._validators: dict[str, Draft202012Validator] = {}
        for tool in registry.tools:
            try:
                Draft202012Validator.check_schema(tool.parameters)
            except SchemaError as exc:
                raise InputError(
                    f"tool {tool.name!r} has an invalid parameters schema: {exc.message}", registry.name
                ) from None
            self._validators[tool.name] = Draft202012Validator(tool.parameters)

    def issues(self, record: TraceRecord, offered: Sequence[str] | None = None) -> list[str]:
        allowed = set(offered) if offered else set(self.registry.names)
        found: list[str] = []
        for number, step in enumerate(record.trace, start=1):
            name = step.action.tool_name
            validator = self._validators.get(name)
            if validator is None or name not in allowed:
                found.append(f"step {number}: unknown tool {name!r}")
                continue
            found.extend(
                f"step {number}: {name}: {issue}"
                for issue in self.argument_errors(name, step.action.arguments)
            )
        return found

    def argument_errors(self, name: str, arguments: object) -> list[str]:
        """``field: message`` for the first (up to 3) ways ``arguments`` break tool ``name``'s
        schema; empty when they fit or the tool is not in the registry."""
        validator = self._validators.get(name)
        if validator is None:
            return []
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
        found: list[str] = []
        for error in errors[:3]:
            where = "/".join(str(p) for p in error.path)
            found.append(f"{where + ': ' if where else ''}{error.message}")
        return found
