"""``specdecode demo``: ``RUN_DIR/stages/NAME.json`` (each stage's key and result) and
``RUN_DIR/agent.json`` (the live agent check, :func:`specdecode.speculate.live.live_check`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from specdecode.results.base import Number, ResultModel, Versioned
from specdecode.results.common import PairedTest, Rate


class AgentFields(ResultModel):
    """The live agent check's numbers (see :class:`AgentCheck`)."""

    predictor: str | None = None
    traces: int | None = None
    steps: int | None = None
    wall_without_s: Number | None = None
    wall_with_s: Number | None = None
    measured_saving_s: Number | None = None
    predicted_saving_s: Number | None = None
    predicted_baseline_s: Number | None = None
    predicted_speculative_s: Number | None = None
    measured_speedup: Number | None = None
    predicted_speedup: Number | None = None
    bound: Number | None = None
    relative_error: Number | None = None
    within_20_percent: bool | None = None
    hits: int | None = None
    misses: int | None = None
    wasted_calls: int | None = None
    predicted_wasted_calls: int | None = None
    executor_time_saved_s: Number | None = None


class AgentCheck(AgentFields, Versioned):
    """``agent.json``: the same traces as a live agent without and with the executor, beside
    replay's prediction for them."""

    FILE = "RUN_DIR/agent.json (demo; speculate.live.live_check)"


class StageResult(ResultModel):
    """A stage's result; each ends with ``seconds``, how long the stage ran."""

    seconds: float | None = Field(default=None, description="wall time of the run that made the result")


class SplitLevels(ResultModel):
    L1: int = 0
    L2: int = 0
    L3: int = 0
    total: int = 0


class DataStage(StageResult):
    levels: dict[str, SplitLevels] = Field(default_factory=dict, description="split → traces per level")
    examples: dict[str, dict[str, int]] = Field(default_factory=dict, description="split → form → examples")
    n: int | None = None
    seed: int | None = None
    registry: str | None = None
    seconds: Number | None = None


class TrainStage(StageResult):
    form: str | None = None
    lora_r: int | None = None
    steps: int | None = None
    batch: int | None = None
    train_seconds: Number | None = None
    mixed_precision: str | None = None
    initial_eval_loss: Number | None = None
    final_eval_loss: Number | None = None
    final_eval_perplexity: Number | None = None
    seconds: Number | None = None


class CompareStage(StageResult):
    mode: str | None = None
    n: int | None = None
    file: str | None = None
    dtype: str | None = Field(None, description="the model weights' dtype during generation")
    base: dict[str, Rate] = Field(default_factory=dict)
    lora: dict[str, Rate] = Field(default_factory=dict)
    paired: dict[str, PairedTest] = Field(default_factory=dict)
    seconds: Number | None = None


class SpeculateStage(StageResult):
    lines: list[str] = Field(default_factory=list, description="the summary's Markdown")
    headline: str | None = None
    seconds: Number | None = None


class AgentStage(AgentFields, StageResult):
    lines: list[str] = Field(default_factory=list)
    seconds: Number | None = None


STAGES: dict[str, type[StageResult]] = {
    "data": DataStage,
    "train": TrainStage,
    "compare": CompareStage,
    "compare_trace": CompareStage,
    "speculate": SpeculateStage,
    "agent": AgentStage,
}


class StageRecord(Versioned):
    """``stages/NAME.json``: the hash of the stage's inputs and settings, and its result
    (reused while the key is unchanged)."""

    FILE = "RUN_DIR/stages/NAME.json (demo)"

    key: str | None = None
    result: dict[str, Any] = Field(default_factory=dict, description="one of the *Stage models, by NAME")

    def typed(self, name: str) -> StageResult:
        return STAGES.get(name, StageResult).model_validate(self.result)
