"""Result files have one shape each (``specdecode.results``): files written by specdecode 0.1
before ``schema_version`` load and write back unchanged, the demo's Markdown renders from them as
it did, the report reads an old run directory, and ``docs/formats.md`` holds the current schemas."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from specdecode.report import write_report
from specdecode.report.summary_md import agent_lines, replay_markdown, summary_lines
from specdecode.results import (
    STAGES,
    AgentCheck,
    CompareRow,
    CompareSummary,
    EvalRow,
    EvalSummary,
    LatencyFile,
    ReplayRow,
    ReplaySummary,
    StageRecord,
    TrainingCurves,
    TrainingSummary,
    read_result,
    read_rows,
)
from specdecode.results.schemas import render

OLD = Path(__file__).parent / "data" / "results-0.1"
DOCS = Path(__file__).parent.parent / "docs" / "formats.md"
DEMO_STAGES = ("data", "train", "compare", "speculate", "agent")
FILES = [
    ("eval.summary.json", EvalSummary),
    ("compare.summary.json", CompareSummary),
    ("replay/summary.json", ReplaySummary),
    ("replay/latency.json", LatencyFile),
    ("adapter/training_summary.json", TrainingSummary),
    ("adapter/training_curves.json", TrainingCurves),
    ("demo/agent.json", AgentCheck),
    *((f"demo/stages/{name}.json", StageRecord) for name in DEMO_STAGES),
]
ROWS = [("eval.jsonl", EvalRow), ("compare.jsonl", CompareRow), ("replay/steps.jsonl", ReplayRow)]


@pytest.mark.parametrize(("name", "model"), FILES, ids=[f for f, _ in FILES])
def test_old_summaries_load_and_write_back_unchanged(name: str, model) -> None:
    raw = json.loads((OLD / name).read_text(encoding="utf-8"))
    loaded = read_result(OLD / name, model)
    if "schema_version" in model.model_fields:  # latency.json is keyed by predictor: no version
        assert loaded.schema_version == 0  # written before versions
    assert loaded.dump() == raw and list(loaded.dump()) == list(raw)


@pytest.mark.parametrize(("name", "model"), ROWS, ids=[f for f, _ in ROWS])
def test_old_rows_load_and_write_back_unchanged(name: str, model) -> None:
    rows, bad = read_rows(OLD / name, model)
    raw = [json.loads(line) for line in (OLD / name).read_text(encoding="utf-8").splitlines()]
    assert bad == 0 and [r.dump() for r in rows] == raw


def test_typed_reads_of_old_files() -> None:
    replay = read_result(OLD / "replay" / "summary.json", ReplaySummary)
    assert list(replay.results) == replay.predictors == ["frequency", "pattern", "lora"]
    lora = replay.results["lora"]
    assert lora.rate("hit_at_1").mean == lora.hit_at_1 and lora.rate("hit_at_1").interval is not None
    assert replay.best() in replay.predictors and replay.fastest() in replay.predictors
    compare = read_result(OLD / "compare.summary.json", CompareSummary)
    assert compare.test("first_call_exact").counted and compare.fingerprint.field("command") == "compare"
    row = read_rows(OLD / "compare.jsonl", CompareRow)[0][0]
    first = json.loads((OLD / "compare.jsonl").read_text().splitlines()[0])
    assert row.side("lora").metrics == first["lora_metrics"]


def test_demo_markdown_renders_as_before() -> None:
    """The demo's Markdown from typed results equals what 0.1 wrote from the same results."""
    stages = {
        name: read_result(OLD / "demo" / "stages" / f"{name}.json", StageRecord).typed(name)
        for name in DEMO_STAGES
    }
    assert set(stages) <= set(STAGES)
    expected = (OLD / "demo" / "summary.md").read_text(encoding="utf-8")
    rendered = "\n".join(summary_lines(stages)) + "\n"
    # What 0.1 wrote, then the stage-time table added since (each stage's own seconds).
    old, times = rendered.split("\n## Stage times\n")
    assert old == expected
    seconds = {name: stage.seconds for name, stage in stages.items()}
    assert all(f"| {name} | {s:.0f} |" in times for name, s in seconds.items() if s is not None)
    assert f"| **total** | **{sum(s for s in seconds.values() if s):.0f}** |" in times
    replay = read_result(OLD / "replay" / "summary.json", ReplaySummary)
    assert replay_markdown(replay, "note") == stages["speculate"].lines  # type: ignore[attr-defined]
    check = read_result(OLD / "demo" / "agent.json", AgentCheck)
    assert agent_lines(check) == stages["agent"].lines  # type: ignore[attr-defined]


def test_report_reads_an_old_run_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(OLD, run)
    md = write_report(run, tmp_path / "out")[0].read_text(encoding="utf-8")
    for name in ("frequency", "pattern", "lora"):
        assert f"| **{name}** |" in md
    assert "Base model vs adapter" in md and "### Example steps" in md and "Training" in md
    # 0.1 replays have no per-trace simulation: the timeline is left out, and the report says so
    assert "timeline.jsonl" in md


def test_formats_doc_holds_the_current_schemas() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert render(text) == text, "docs/formats.md is stale: run `python -m specdecode.results.schemas`"
