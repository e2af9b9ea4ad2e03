"""``specdecode gaia``: load a local GAIA copy, split by level, count, annotator gold traces."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from specdecode.cli._common import Out, SkipInvalid, console, done, guard, parse_ratios
from specdecode.jsonl import read_records, write_json, write_jsonl

gaia_app = typer.Typer(
    help="GAIA utilities: load a local copy, split by level, count, annotator gold traces.",
    no_args_is_help=True,
)


# --------------------------------------------------------------------------- gaia
@gaia_app.command("load")
def gaia_load(
    root: Annotated[
        str,
        typer.Argument(
            help="Local GAIA copy (HF snapshot layout or a folder "
            "of one JSON per question), or 'hub' for the gated "
            "gaia-benchmark/GAIA dataset."
        ),
    ],
    out: Out,
    split: Annotated[str, typer.Option(help="validation or test.")] = "validation",
) -> None:
    """Read GAIA questions into a questions JSONL (id, question, level, final_answer, …)."""
    from specdecode.gaia import load_hub, load_local

    guard(input_folders=[root] if root != "hub" else [], files={"--out": out})
    records = load_hub(split) if root == "hub" else load_local(root, split)
    write_jsonl(out, records)
    levels = Counter(r.level for r in records)
    done(
        f"{len(records)} questions → {out} (levels: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(levels.items(), key=lambda kv: str(kv[0])))
        + ")"
    )


def _read_keyed(path: Path, skip_invalid: bool) -> list[dict]:
    """Rows with an ``id`` and an optional integer ``level`` (questions, traces or chats)."""
    from pydantic import BaseModel, ConfigDict, Field

    class Keyed(BaseModel):
        model_config = ConfigDict(extra="allow")
        id: str = Field(min_length=1)
        level: int | None = Field(default=None, ge=1, le=3)

    return [r.model_dump(exclude_none=True) for r in read_records(path, Keyed, skip_invalid=skip_invalid)]


@gaia_app.command("split")
def gaia_split(
    input: Annotated[Path, typer.Argument(help="JSONL of questions or traces (needs id, level).")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Writes train/val/test.jsonl here.")],
    seed: Annotated[int, typer.Option(help="Shuffle seed; the same seed gives identical files.")] = 42,
    ratios: Annotated[str, typer.Option(help="train,val,test fractions.")] = "0.75,0.125,0.125",
    per_question_dirs: Annotated[
        bool,
        typer.Option(
            "--per-question-dirs", help="Also write <out-dir>/<split>/<id>.json, one file per question."
        ),
    ] = False,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Split by level: every level with ≥ 3 items appears in every split."""
    from specdecode.gaia import stratified_split

    names = ("train", "val", "test")
    guard(
        inputs=[input],
        files={f"--out-dir ({name}.jsonl)": out_dir / f"{name}.jsonl" for name in names},
        folders={"--out-dir": out_dir},
        trees={f"--out-dir ({name}/)": out_dir / name for name in names} if per_question_dirs else {},
    )
    parts = stratified_split(_read_keyed(input, skip_invalid), parse_ratios(ratios), seed)
    for name, rows in parts.items():
        write_jsonl(out_dir / f"{name}.jsonl", rows)
        if per_question_dirs:
            for row in rows:
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in row["id"])
                write_json(out_dir / name / f"{safe}.json", row)
    done(
        f"split {sum(len(v) for v in parts.values())} records → {out_dir} ("
        + ", ".join(f"{k}: {len(v)}" for k, v in parts.items())
        + ")"
    )
    _print_levels({out_dir / f"{k}.jsonl": v for k, v in parts.items()})


def _print_levels(files: dict[Path, list[dict]]) -> None:
    levels = sorted({r.get("level") for rows in files.values() for r in rows}, key=lambda x: (x is None, x))
    table = Table(title="Questions per level")
    table.add_column("split")
    for level in levels:
        table.add_column(f"L{level}" if level is not None else "no level", justify="right")
    table.add_column("total", justify="right", style="bold")
    totals: Counter = Counter()
    for path, rows in files.items():
        counts = Counter(r.get("level") for r in rows)
        totals.update(counts)
        table.add_row(path.stem, *(str(counts[lv]) for lv in levels), str(len(rows)))
    if len(files) > 1:
        table.add_row("all", *(str(totals[lv]) for lv in levels), str(sum(totals.values())), style="bold")
    console.print(table)


@gaia_app.command("levels")
def gaia_levels(
    files: Annotated[
        list[Path], typer.Argument(help="JSONL files, one split each (e.g. train.jsonl val.jsonl).")
    ],
    skip_invalid: SkipInvalid = False,
) -> None:
    """Print a table of counts per level and split."""
    _print_levels({path: _read_keyed(path, skip_invalid) for path in files})


@gaia_app.command("annotator-traces")
def gaia_annotator_traces(
    root: Annotated[str, typer.Argument(help="Local GAIA copy, or a questions JSONL from 'gaia load'.")],
    out: Out,
    registry: Annotated[str, typer.Option(help="tools4 or tools17.")] = "tools17",
    split: Annotated[str, typer.Option(help="validation or test.")] = "validation",
) -> None:
    """Gold traces from GAIA's Annotator Metadata (no API needed); reports unmapped tools."""
    from specdecode.gaia import MappingReport, annotator_trace, load_local
    from specdecode.gaia.annotator import ROLES
    from specdecode.records import QuestionRecord

    if registry not in ROLES:
        raise typer.BadParameter(f"choose one of {', '.join(ROLES)}", param_hint="--registry")
    path = Path(root)
    guard(
        inputs=[path] if path.is_file() else [],
        input_folders=[] if path.is_file() else [path],
        files={"--out": out},
    )
    questions = read_records(path, QuestionRecord) if path.is_file() else load_local(path, split)
    report = MappingReport()
    traces = [t for q in questions if (t := annotator_trace(q, registry, report)) is not None]
    write_jsonl(out, traces)
    done(f"{report.records} traces → {out}; {len(report.skipped)} questions without steps skipped")
    if report.unmapped_tools:
        table = Table(title="Annotator tools not mapped to the registry")
        table.add_column("tool as written")
        table.add_column("questions", justify="right")
        for tool, count in report.unmapped_tools.most_common():
            table.add_row(tool, str(count))
        console.print(table)
