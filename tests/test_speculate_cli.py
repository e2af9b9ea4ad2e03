"""``speculate fit`` + ``speculate replay`` through the real CLI, with the model predictors on the
tiny random Qwen3; the example agent's measured saving against replay's prediction."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

from conftest import ROOT, run_cli
from specdecode.data.synth import synthesize
from specdecode.jsonl import write_jsonl


def test_fit_and_replay_end_to_end(tmp_path: Path, tiny_qwen3: Path):
    write_jsonl(tmp_path / "train.jsonl", synthesize(60, seed=0))
    write_jsonl(tmp_path / "test.jsonl", synthesize(3, seed=1))
    run_cli("speculate", "fit", tmp_path / "train.jsonl", "--out", tmp_path / "fitted", check=True)
    assert (tmp_path / "fitted" / "pattern.json").is_file()
    args = [
        "speculate", "replay",
        "--traces", tmp_path / "test.jsonl",
        "--registry", "tools4",
        "--predictor", "frequency", "--predictor", "pattern",
        "--predictor", "model", "--predictor", "hybrid",
        "--fitted", tmp_path / "fitted",
        "--base_model", tiny_qwen3,  # the prototype's snake_case spelling
        "--k", "2",
        "--max-new-tokens", "12",
        "--latency-samples", "2",
        "--tool-latency", "lognormal:0,0.6",
        "--tool-latency", "final_answer=fixed:0",
        "--actor-latency", "fixed:2.0",
        "--out", tmp_path / "replay",
    ]  # fmt: skip
    run_cli(*args, check=True)
    summary = json.loads((tmp_path / "replay" / "summary.json").read_text())
    steps = sum(len(t.trace) for t in synthesize(3, seed=1))
    for name in ("frequency", "pattern", "base", "hybrid"):
        s = summary[name]
        assert s["steps"] == steps
        for key in ("hit_at_1", "hit_at_k", "name_hit_at_1", "speedup", "bound", "wasted_calls"):
            assert key in s
        assert s["speedup"] <= s["bound"] + 1e-9
    assert summary["base"]["next_call_latency"]["cached_prefix"]["n"] == 2
    assert "base vs pattern" in summary["paired"]
    rows = (tmp_path / "replay" / "steps.jsonl").read_text().splitlines()
    assert len(rows) == 4 * steps


def test_bad_latency_is_one_line(tmp_path: Path):
    write_jsonl(tmp_path / "t.jsonl", synthesize(2, seed=1))
    proc = run_cli(
        "speculate", "replay", "--traces", tmp_path / "t.jsonl", "--predictor", "frequency",
        "--fitted", tmp_path, "--tool-latency", "gamma:1", "--out", tmp_path / "o",
    )  # fmt: skip
    assert proc.returncode == 2 and "bad latency" in proc.stderr


def test_example_agent_saving_matches_replay():
    result = runpy.run_path(str(ROOT / "examples" / "speculative_agent.py"), run_name="not_main")["main"](
        ["--n", "8"]
    )
    assert result["hits"] > 0 and result["wasted_calls"] == result["predicted_wasted_calls"]
    assert result["relative_error"] < 0.35  # the 20 % acceptance is checked on 20 traces in BENCHMARKS.md


def test_demo_stage_markdown(tmp_path: Path, tiny_qwen3: Path):
    from specdecode.speculate.demo_stage import speculation_stage

    lines = speculation_stage(
        tmp_path, synthesize(40, seed=0), synthesize(2, seed=1), None, "tools4", base_model=str(tiny_qwen3)
    )
    text = "\n".join(lines)
    assert "## Speculation" in text
    for name in ("| frequency |", "| pattern |", "| base |", "| hybrid |", "hybrid vs pattern"):
        assert name in text
    assert (tmp_path / "speculate" / "replay" / "summary.json").is_file()
