"""Tool registries: the shipped 4-tool and 17-tool sets, or a user's YAML/JSON file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from specdecode.errors import InputError
from specdecode.jsonl import describe_validation_error
from specdecode.records import ToolSpec

BUILTIN = ("tools4", "tools17")


@dataclass(frozen=True)
class Registry:
    """An ordered set of tools, addressable by name."""

    name: str
    tools: tuple[ToolSpec, ...]

    def __post_init__(self) -> None:
        names = [t.name for t in self.tools]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise InputError(f"duplicate tool names: {', '.join(sorted(dup))}", self.name)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tools]

    def fingerprint(self) -> str:
        """A short hash of every tool's name, description and schema (part of run fingerprints)."""
        tools = json.dumps([t.model_dump() for t in self.tools], sort_keys=True)
        return hashlib.sha256(tools.encode()).hexdigest()[:16]

    def get(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)

    def subset(self, names: list[str] | None) -> list[ToolSpec]:
        """The tools offered for one record: its ``tools`` list, or the whole registry."""
        if not names:
            return list(self.tools)
        # Names that the registry does not know still appear (with a generic description).
        return [self.get(n) or ToolSpec(name=n, description="(not in registry)") for n in names]


def _schema_problem(schema: dict) -> str | None:
    """Why ``schema`` is not a usable JSON Schema for a tool's arguments (None when it is)."""
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "".join(f"[{p!r}]" for p in exc.path)
        return f"not a valid JSON Schema: {where}{' ' if where else ''}{exc.message}".splitlines()[0]
    if schema.get("type", "object") != "object":
        return f"the arguments' schema must have type 'object', not {schema.get('type')!r}"
    return None


def load_registry(name_or_path: str | Path) -> Registry:
    """Load ``tools4``/``tools17`` or a YAML/JSON file holding a list of tools."""
    key = str(name_or_path)
    if key in BUILTIN:
        text = resources.files("specdecode.registry").joinpath(f"{key}.yaml").read_text("utf-8")
        source = key
    else:
        from specdecode.inputs import check_value, loads, read_text

        path = Path(key)
        if not path.exists() and not path.is_symlink():
            raise InputError(f"no such registry file (built-in: {', '.join(BUILTIN)})", path)
        text, source = read_text(path, "registry file"), str(path)
    try:
        if source.endswith(".json"):
            data = loads(text, source)
        else:
            data = yaml.safe_load(text)
            if source not in BUILTIN:
                data = check_value(data, source)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"cannot parse registry: {exc}".splitlines()[0], source) from None
    except RecursionError:
        raise InputError("cannot parse registry: nested too deep", source) from None
    except InputError as exc:
        if exc.detail.startswith("invalid JSON"):
            raise InputError(f"cannot parse registry: {exc.detail}", source, exc.line) from None
        raise
    if isinstance(data, dict) and "tools" in data:
        data = data["tools"]
    if not isinstance(data, list) or not data:
        raise InputError("a registry is a non-empty list of tools", source)
    tools = []
    for index, item in enumerate(data):
        try:
            tools.append(ToolSpec.model_validate(item))
        except ValidationError as exc:
            raise InputError(f"tool {index}: {describe_validation_error(exc)}", source) from None
        problem = _schema_problem(tools[-1].parameters)
        if problem:
            raise InputError(f"tool {index} ({tools[-1].name}): parameters: {problem}", source)
    return Registry(name=source, tools=tuple(tools))
