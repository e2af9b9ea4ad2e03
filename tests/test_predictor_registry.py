"""A new predictor is one module: it registers itself, and ``speculate fit``, replay, the report's
table, figures and palette pick it up without a change anywhere else. The toy predictor below
is that module, written inside this test file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from specdecode.data.synth import synthesize
from specdecode.jsonl import write_jsonl
from specdecode.records import ToolCall, TraceRecord
from specdecode.registry import load_registry
from specdecode.report import write_report
from specdecode.report.figures import color
from specdecode.speculate.predictors import Predictor, PredictorSpec, StepContext, register, registry
from specdecode.speculate.replay import ReplaySettings, replay
from specdecode.speculate.run import build_predictors, fit, predictor_choices
from specdecode.speculate.simulate import LatencyModel

TOY_COLOUR = "#a21caf"


# ------------------------------------------------------------------ the whole new predictor
class RepeatPredictor(Predictor):
    """Guesses the previous call again; on the first step, the most common first call."""

    name = "repeat"

    def __init__(self, first: dict[str, Any]):
        self.first = first

    @classmethod
    def fit(cls, traces: Sequence[TraceRecord]) -> RepeatPredictor:
        firsts = Counter(
            (t.trace[0].action.tool_name, repr(t.trace[0].action.arguments)) for t in traces if t.trace
        )
        (tool, _), _ = firsts.most_common(1)[0]
        call = next(t.trace[0].action for t in traces if t.trace and t.trace[0].action.tool_name == tool)
        return cls(call.model_dump())

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.name, "first": self.first}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RepeatPredictor:
        return cls(data["first"])

    def predict(self, context: StepContext, k: int = 1) -> list[ToolCall]:
        if context.history:
            return [context.history[-1].action][:k]
        return [ToolCall.model_validate(self.first)][:k]


SPEC = PredictorSpec(
    "repeat",
    "the previous call again (a toy)",
    TOY_COLOUR,
    "table",
    fit=RepeatPredictor.fit,
    load=RepeatPredictor.from_json,
    in_demo=False,
)
# ------------------------------------------------------------------ end of the new predictor


@pytest.fixture()
def registered() -> Iterator[PredictorSpec]:
    """The toy registered for one test (the registry is module state: put it back afterwards)."""
    registry.names()  # the shipped predictors first
    register(SPEC)
    yield SPEC
    registry.PREDICTORS.pop(SPEC.name)


def test_a_registered_predictor_runs_through_fit_replay_and_report(registered, tmp_path: Path) -> None:
    assert "repeat" in predictor_choices() and registry.spec_of("repeat").kind == "table"
    traces = synthesize(24, seed=0, registry="tools4")
    train, test = traces[:16], traces[16:]
    write_jsonl(tmp_path / "traces" / "test.jsonl", test)
    fitted = fit(train, tmp_path / "fitted")
    assert "repeat" in fitted and (tmp_path / "fitted" / "repeat.json").is_file()

    predictors = build_predictors(["frequency", "repeat"], tmp_path / "fitted")
    settings = ReplaySettings(k=2, latency=LatencyModel.from_specs("fixed:2", "fixed:1"), latency_samples=0)
    summary = replay(test, load_registry("tools4"), predictors, tmp_path / "replay", settings)
    assert summary["predictors"] == ["frequency", "repeat"]
    assert 0 <= summary["repeat"]["hit_at_1"] <= 1 and summary["repeat"]["steps"] == summary["steps"]

    md = write_report(tmp_path, tmp_path / "report")[0].read_text(encoding="utf-8")
    assert "| **repeat** |" in md and "repeat vs frequency" in md
    assert color("repeat") == TOY_COLOUR
    svg = (tmp_path / "report" / "figures" / "predictor_hits.svg").read_text(encoding="utf-8")
    assert TOY_COLOUR in svg
