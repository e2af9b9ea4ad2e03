"""Read GAIA from a local copy: the Hugging Face snapshot layout or a folder of JSON files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from specdecode.errors import InputError
from specdecode.inputs import read_json, require_file
from specdecode.jsonl import describe_validation_error, iter_json_lines
from specdecode.records import QuestionRecord

# GAIA's own field names → ours. Our names are accepted too (a re-read of our output).
_FIELDS = {
    "task_id": "id",
    "Question": "question",
    "Level": "level",
    "Final answer": "final_answer",
    "file_name": "file_name",
    "Annotator Metadata": "annotator_metadata",
}


def question_from_gaia(row: dict[str, Any], where: str, line: int | None = None) -> QuestionRecord:
    """One GAIA row (either naming) as a QuestionRecord; extra fields are kept."""
    data = {_FIELDS.get(k, k): v for k, v in row.items()}
    if isinstance(data.get("level"), str) and data["level"].strip().isdigit():
        data["level"] = int(data["level"])
    if data.get("final_answer") is not None:
        data["final_answer"] = str(data["final_answer"])
    if data.get("file_name") == "":
        data["file_name"] = None
    try:
        return QuestionRecord.model_validate(data)
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc), where, line) from None


def _metadata_file(root: Path, split: str) -> Path | None:
    for folder in (root / "2023" / split, root / split, root):
        for name in ("metadata.jsonl", "metadata.parquet"):
            if (folder / name).exists() or (folder / name).is_symlink():
                return folder / name  # a FIFO or a broken link here is refused when read
    return None


def _read_parquet(path: Path) -> list[QuestionRecord]:
    import pyarrow.parquet as pq

    require_file(path, "parquet file")
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(f"cannot read parquet: {exc}".splitlines()[0], path) from None
    return [question_from_gaia(row, str(path), number) for number, row in enumerate(rows, 1)]


def _read_folder(root: Path) -> list[QuestionRecord]:
    records = []
    for path in sorted(root.glob("*.json")):
        row = read_json(path)  # bounded; one-line errors naming the file
        if not isinstance(row, dict):
            raise InputError("expected a JSON object", path, 1)
        row.setdefault("task_id", path.stem)
        records.append(question_from_gaia(row, str(path), 1))
    return records


def load_local(root: str | Path, split: str = "validation") -> list[QuestionRecord]:
    """Questions from ``<root>/2023/<split>/metadata.{jsonl,parquet}`` or a folder of ``*.json``."""
    root = Path(root)
    if not root.exists():
        raise InputError("no such GAIA folder", root)
    meta = _metadata_file(root, split)
    if meta is not None and meta.suffix == ".jsonl":
        records = [question_from_gaia(row, str(meta), n) for n, row in iter_json_lines(meta)]
    elif meta is not None:
        records = _read_parquet(meta)
    else:
        folder = root / split if (root / split).is_dir() else root
        records = _read_folder(folder)
        if not records:
            raise InputError(
                f"no metadata.jsonl/metadata.parquet under 2023/{split}/ and no *.json files", root
            )
    ids = [r.id for r in records]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise InputError(f"duplicate task ids: {', '.join(dup[:3])}", root)
    return records


def load_hub(split: str = "validation", config: str = "2023_all") -> list[QuestionRecord]:
    """Questions from the gated ``gaia-benchmark/GAIA`` dataset (needs access and network)."""
    from datasets import load_dataset

    rows = load_dataset("gaia-benchmark/GAIA", config, split=split)
    return [question_from_gaia(dict(row), f"hub:{split}", n) for n, row in enumerate(rows, 1)]
