"""Synthetic data, level-stratified splits and the level table, through the real CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import run_cli
from specdecode import TraceRecord, load_registry, read_records
from specdecode.data import synthesize
from specdecode.gaia.split import split_counts, stratified_split


def _pipeline(folder: Path, seed: int = 0) -> None:
    run_cli("data", "synth", "--n", "160", "--seed", str(seed), "--out", folder / "traces.jsonl", check=True)
    run_cli("gaia", "split", folder / "traces.jsonl", "--out-dir", folder / "split", check=True)


def test_synth_split_levels_reproducible_and_stratified(tmp_path: Path) -> None:
    _pipeline(tmp_path / "a")
    _pipeline(tmp_path / "b")
    for name in ("traces.jsonl", "split/train.jsonl", "split/val.jsonl", "split/test.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    traces = read_records(tmp_path / "a" / "traces.jsonl", TraceRecord)
    assert len(traces) == 160
    per_level = Counter(t.level for t in traces)
    for split in ("train", "val", "test"):
        rows = read_records(tmp_path / "a" / "split" / f"{split}.jsonl", TraceRecord)
        levels = Counter(r.level for r in rows)
        assert set(levels) == {1, 2, 3}, f"{split} misses a level"
        for level, total in per_level.items():
            share = {"train": 0.75, "val": 0.125, "test": 0.125}[split]
            assert abs(levels[level] - total * share) <= 1
    proc = run_cli(
        "gaia",
        "levels",
        *(tmp_path / "a" / "split" / f"{s}.jsonl" for s in ("train", "val", "test")),
        check=True,
    )
    train = Counter(t.level for t in read_records(tmp_path / "a/split/train.jsonl", TraceRecord))
    row = next(line for line in proc.stdout.splitlines() if "train" in line)
    assert [int(x) for x in row.replace("│", " ").split()[1:]] == [
        train[1],
        train[2],
        train[3],
        sum(train.values()),
    ]


def test_other_seed_gives_other_data(tmp_path: Path) -> None:
    a = [t.question for t in synthesize(20, seed=0)]
    b = [t.question for t in synthesize(20, seed=1)]
    assert a != b


@pytest.mark.parametrize("registry", ["tools4", "tools17"])
def test_synth_traces_are_valid_and_varied(registry: str) -> None:
    records = synthesize(200, seed=3, registry=registry)
    names = set(load_registry(registry).names)
    assert {len(r.trace) for r in records} >= {2, 3, 4, 5}
    assert max(len(r.trace) for r in records) <= 6
    assert len({r.family for r in records}) >= (7 if registry == "tools4" else 12)
    assert len({r.question for r in records}) == len(records)
    for record in records:
        assert record.trace[-1].action.tool_name == "final_answer"
        assert record.trace[-1].action.arguments["answer"] == record.final_answer
        for step in record.trace:
            assert step.action.tool_name in names
            if registry == "tools17":
                assert step.action.tool_name in record.tools
        if registry == "tools17":
            assert len(record.tools) > len({s.action.tool_name for s in record.trace}), "distractors"


def test_first_call_arguments_come_from_the_question() -> None:
    for record in synthesize(100, seed=5, registry="tools17"):
        args = record.trace[0].action.arguments
        pieces = [v for k, v in args.items() if k in ("title", "image_path", "country")]
        for value in pieces:
            assert str(value) in record.question


def test_split_counts_keep_every_split_non_empty() -> None:
    assert split_counts(3, (0.75, 0.125, 0.125)) == [1, 1, 1]
    assert split_counts(8, (0.75, 0.125, 0.125)) == [6, 1, 1]
    assert split_counts(2, (0.75, 0.125, 0.125)) == [2, 0, 0]
    assert sum(split_counts(161, (0.75, 0.125, 0.125))) == 161


def test_split_ignores_input_order() -> None:
    rows = [{"id": f"q{i}", "level": 1 + i % 3} for i in range(30)]
    a = stratified_split(rows, seed=7)
    b = stratified_split(list(reversed(rows)), seed=7)
    assert a == b
    assert stratified_split(rows, seed=8) != a


def test_split_writes_per_question_folders(tmp_path: Path) -> None:
    src = tmp_path / "q.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"id/{i}", "level": 1 + i % 3, "x": i}) + "\n" for i in range(9))
    )
    run_cli(
        "gaia", "split", src, "--out-dir", tmp_path / "s", "--per-question-dirs", "--seed", "1", check=True
    )
    files = sorted(p.relative_to(tmp_path / "s").as_posix() for p in (tmp_path / "s").rglob("*.json"))
    assert len(files) == 9 and all(f.split("/")[0] in ("train", "val", "test") for f in files)
    one = json.loads(next((tmp_path / "s").rglob("*.json")).read_text())
    assert "x" in one, "extra fields are kept"


def test_bad_ratios_are_a_usage_error(tmp_path: Path) -> None:
    src = tmp_path / "q.jsonl"
    src.write_text(json.dumps({"id": "a", "level": 1}) + "\n")
    proc = run_cli("gaia", "split", src, "--out-dir", tmp_path / "s", "--ratios", "0.5,0.5,0.5")
    assert proc.returncode == 2 and "summing to 1" in proc.stderr
    assert not (tmp_path / "s").exists()
