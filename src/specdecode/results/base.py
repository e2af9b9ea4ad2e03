"""What every result model shares: kept unknown fields, a schema version, reading and writing.

Writers build a model from what they computed and write ``model.dump()``: exactly the fields
they set (nothing invented, numbers as computed — infinities included, as ``json`` writes them).
Readers validate a file with ``read_result``; every field has a default, so files written by
specdecode 0.1 (``schema_version`` 0, before results were versioned) and files with sections
missing still load, and fields a later version adds are kept as extras.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from specdecode.errors import InputError
from specdecode.jsonl import write_json

# A JSON number kept as written (an int stays an int, a float a float).
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]

M = TypeVar("M", bound="ResultModel")
V = TypeVar("V", bound="Versioned")


class ResultModel(BaseModel):
    """A part of a result file: unknown fields are kept, every field has a default."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        """The fields that were set, as plain Python (what the writer computed)."""
        return self.model_dump(exclude_unset=True, by_alias=True)


class Versioned(ResultModel):
    """A whole result file (a summary, a stage record): it carries ``schema_version``."""

    VERSION: ClassVar[int] = 1
    FILE: ClassVar[str] = ""  # where a command writes it, for docs/formats.md

    schema_version: int = Field(
        0, description="Format version: 0 = written by specdecode 0.1 before versions were stored."
    )

    @classmethod
    def new(cls: type[V], **fields: Any) -> V:
        """A model of this version from freshly computed fields (validated on the way out)."""
        return cls.model_validate({"schema_version": cls.VERSION, **fields})

    def write(self, path: str | Path) -> dict[str, Any]:
        """Write atomically as indented JSON; returns what was written."""
        data = self.dump()
        write_json(path, data)
        return data


# Everything a reader may meet in a torn, truncated or foreign file.
UNREADABLE = (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError, ValueError, InputError)


def read_result(path: str | Path, model: type[M]) -> M:
    """One JSON file, through the bounded reader (regular files only, bounded nesting and
    numbers, finite numbers), validated by ``model`` (raises one of ``UNREADABLE``)."""
    from specdecode.inputs import read_json

    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return model.model_validate(data)


def read_rows(path: str | Path, model: type[M]) -> tuple[list[M], int]:
    """The rows of a JSONL file that ``model`` accepts, and how many lines were unreadable."""
    from specdecode.inputs import iter_lines, loads

    rows: list[M] = []
    bad = 0
    for number, raw in iter_lines(path):
        if not raw.strip():
            continue
        try:
            rows.append(model.model_validate(loads(raw, path, number)))
        except (ValidationError, InputError):
            bad += 1
    return rows, bad


def as_row(model: type[M], data: dict[str, Any]) -> dict[str, Any]:
    """A freshly computed row checked by its model, as written (the fields given, in model order)."""
    return model.model_validate(data).dump()
