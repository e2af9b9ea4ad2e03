"""GAIA loading from the three on-disk layouts, and annotator gold traces."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import GAIA_ROWS, run_cli
from specdecode import QuestionRecord, TraceRecord, read_records
from specdecode.gaia import MappingReport, annotator_trace, load_local


def _check(records: list[QuestionRecord]) -> None:
    assert [r.id for r in records] == [row["task_id"] for row in GAIA_ROWS]
    assert [r.level for r in records] == [int(row["Level"]) for row in GAIA_ROWS]
    assert records[4].file_name == "sheet.xlsx" and records[0].file_name is None
    assert records[3].final_answer == "21"
    assert records[0].annotator_metadata["Number of tools"] == "4"


def test_load_metadata_jsonl(gaia_root: Path, tmp_path: Path) -> None:
    _check(load_local(gaia_root, "validation"))
    out = tmp_path / "q.jsonl"
    proc = run_cli("gaia", "load", gaia_root, "--out", out, check=True)
    assert "12 questions" in proc.stderr
    _check(read_records(out, QuestionRecord))


def test_load_metadata_parquet(tmp_path: Path) -> None:
    folder = tmp_path / "g" / "2023" / "test"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(GAIA_ROWS), folder / "metadata.parquet")
    _check(load_local(tmp_path / "g", "test"))


def test_load_per_question_folder(tmp_path: Path) -> None:
    folder = tmp_path / "questions"
    folder.mkdir()
    for row in GAIA_ROWS:
        (folder / f"{row['task_id']}.json").write_text(json.dumps(row))
    _check(load_local(folder))


def test_load_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = run_cli("gaia", "load", tmp_path / "empty", "--out", tmp_path / "q.jsonl")
    assert proc.returncode == 2 and "no metadata.jsonl" in proc.stderr
    folder = tmp_path / "g" / "2023" / "validation"
    folder.mkdir(parents=True)
    (folder / "metadata.jsonl").write_text(
        json.dumps(GAIA_ROWS[0]) + "\n" + json.dumps({**GAIA_ROWS[1], "Level": "seven"}) + "\n"
    )
    proc = run_cli("gaia", "load", tmp_path / "g", "--out", tmp_path / "q.jsonl")
    assert proc.returncode == 2 and "metadata.jsonl:2: level" in proc.stderr
    assert not (tmp_path / "q.jsonl").exists()


def test_annotator_traces_map_tools_and_report_the_rest(gaia_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "gold.jsonl"
    proc = run_cli("gaia", "annotator-traces", gaia_root, "--registry", "tools17", "--out", out, check=True)
    assert "telepathy" in proc.stdout  # the unmapped tool is reported
    traces = read_records(out, TraceRecord)
    assert len(traces) == 12
    names = [s.action.tool_name for s in traces[0].trace]
    # "Opened the Wikipedia page." + "Noted the value." fold into the calculator step's thought.
    assert names == ["web_search", "wiki.get_page", "calculate", "final_answer"]
    assert traces[0].trace[0].action.arguments == {"query": "fixture topic 0"}
    assert "Noted the value." in traces[0].trace[2].thought
    assert traces[5].final_answer == "35"


def test_annotator_tools4_and_empty_steps() -> None:
    report = MappingReport()
    q = QuestionRecord(id="x", question="q?", annotator_metadata={"Steps": "", "Tools": "None"})
    assert annotator_trace(q, "tools4", report) is None and report.skipped == ["x"]
    q = QuestionRecord(
        id="y",
        question="q?",
        final_answer="3",
        annotator_metadata={
            "Steps": "1. Searched the web for x\n2. Computed 1+2",
            "Tools": "1. Search engine",
        },
    )
    trace = annotator_trace(q, "tools4", report)
    assert [s.action.tool_name for s in trace.trace] == ["search", "final_answer"]
    assert trace.trace[-1].thought == "Computed 1+2"
