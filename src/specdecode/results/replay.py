"""``speculate replay``: ``steps.jsonl`` (one row per step and predictor), ``summary.json``,
``latency.json`` (batch-1 timings of the model predictors) and ``timeline.jsonl`` (each trace's
simulated steps per predictor, what the report's timeline draws)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_serializer

from specdecode.results.base import Number, ResultModel, Versioned
from specdecode.results.common import Breakdown, Call, PairedTest, Rate


class ReplayRow(ResultModel):
    """One step of one trace as one predictor saw it (``replay.score_row``)."""

    predictor: str = ""
    id: str = ""
    step: int = 0
    level: int | None = None
    gold_tool: str | None = None
    gold_call: Call | None = None
    pred_calls: list[Call] = Field(default_factory=list, description="its schema-valid top k, in order")
    pred_probs: list[Number] = Field(default_factory=list)
    invalid: int = Field(0, description="candidates dropped for breaking their tool's schema")
    latency: Number | None = None
    hit_at_1: bool = False
    hit_at_k: bool = False
    hit_rank: int | None = None
    name_hit_at_1: bool = False
    name_hit_at_k: bool = False
    exact_hit_at_1: bool = False
    normalised_hit_at_1: bool = False


class LatencyStats(ResultModel):
    n: int | None = None
    p50: Number | None = None
    p95: Number | None = None
    mean: Number | None = None


class PredictionLatency(LatencyStats):
    source: str | None = None


class NextCallLatency(ResultModel):
    cached_prefix: LatencyStats | None = None
    no_cached_prefix: LatencyStats | None = None


class Simulation(ResultModel):
    """Simulated wall clock with and without speculation (``simulate.Totals.summary``)."""

    steps: int | None = None
    baseline_seconds: Number | None = None
    speculative_seconds: Number | None = None
    time_saved_seconds: Number | None = None
    time_saved_share: Number | None = None
    speedup: Number | None = None
    bound: Number | None = None
    bound_step_hit_rate: Number | None = None
    tool_fraction: Number | None = None
    hit_rate: Number | None = None
    hits_used: int | None = None
    weighted_hit_rate: Number | None = None
    launched_calls: int | None = None
    wasted_calls: int | None = None
    wasted_tool_seconds: Number | None = None
    wasted_cost: Number | None = None
    late_predictions: int | None = None


class SweepPoint(ResultModel):
    tool_fraction: Number = 0.0
    speedup: Number = 1.0
    bound: Number | None = 1.0  # None: unbounded (every tool second hidden)
    time_saved_share: Number | None = None


class FrontierPoint(ResultModel):
    """The launch policy at one λ (``policy.LAMBDAS``)."""

    lambda_: Number = Field(0.0, alias="lambda")
    time_saved_seconds: Number | None = None
    time_saved_share: Number = 0.0
    speedup: Number | None = None
    wasted_per_step: Number = 0.0
    launched_per_step: Number | None = None
    hits_used: int | None = None


class ReliabilityBin(ResultModel):
    bin: list[Number] = Field(default_factory=list)
    predicted: Number | None = None
    observed: Number | None = None
    n: int = 0


class Reliability(ResultModel):
    """Predicted probability of the top candidate against how often it was the actor's call."""

    bins: list[ReliabilityBin] = Field(default_factory=list)
    ece: Number | None = None
    n: int | None = None


class ModelGate(PairedTest):
    """On the validation steps, the best calibration with the model's scores (B) against the
    table's own ranking (A): hit@1 wins, ties, losses, exact McNemar p; the model's scores are
    used only when ``model_chosen`` (more wins than losses and p < ``gate``)."""

    gate: Number | None = None
    model_chosen: bool | None = None


class CalibrationReport(ResultModel):
    """A calibrating predictor's fit on the validation split (its parameters are extra fields)."""

    ece: Number | None = None
    reliability: Reliability | None = None
    versus_table: ModelGate | None = None


class PredictorSummary(ResultModel):
    """One predictor over every replayed step (``replay.summarise_predictor``). ``hit_at_1``,
    ``hit_at_k``, ``name_hit_at_1`` and ``name_hit_at_k`` repeat the means of ``rates`` (the
    flat numbers older readers use); :meth:`rate` reads either."""

    steps: int | None = None
    invalid_predictions: int | None = None
    steps_with_invalid: int | None = None
    hit_at_1: Number | None = None
    hit_at_k: Number | None = None
    name_hit_at_1: Number | None = None
    name_hit_at_k: Number | None = None
    k: int | None = None
    matcher: str | None = None
    rates: dict[str, Rate] = Field(default_factory=dict)
    per_step_index: dict[str, Breakdown] = Field(default_factory=dict, description="flag → step → rate")
    per_level: dict[str, Breakdown] = Field(default_factory=dict, description="flag → level → rate")
    per_tool: dict[str, Breakdown] = Field(default_factory=dict, description="flag → gold tool → rate")
    latency: PredictionLatency | None = None
    speculator_latency_source: str | None = None
    speedup: Number | None = None
    bound: Number | None = None
    time_saved_seconds: Number | None = None
    wasted_calls: int | None = None
    wasted_cost: Number | None = None
    simulation: Simulation | None = Field(None, description="launching the top guess")
    simulation_at_k: Simulation | None = Field(None, description="launching all k guesses")
    sweep: list[SweepPoint] = Field(default_factory=list)
    frontier: list[FrontierPoint] = Field(default_factory=list)
    reliability: Reliability | None = None
    calibration: CalibrationReport | None = None
    next_call_latency: NextCallLatency | None = None

    def rate(self, flag: str) -> Rate:
        """A hit rate with its interval (``rates``), else the flat mean."""
        return self.rates[flag] if flag in self.rates else Rate.of(getattr(self, flag, None))

    def breakdown(self, group: str, flag: str = "hit_at_1") -> Breakdown:
        """``per_level`` / ``per_tool`` / ``per_step_index`` of one flag (empty when absent)."""
        return getattr(self, group).get(flag, {})

    @property
    def wasted_top1(self) -> int | None:
        """Wasted calls launching the top guess (the simulation's, else the flat count)."""
        if self.simulation is not None and self.simulation.wasted_calls is not None:
            return self.simulation.wasted_calls
        return self.wasted_calls


class LatencyModelRecord(ResultModel):
    """``simulate.LatencyModel.describe()``: distributions as text (``fixed:2``, ``lognormal:0,0.6``)."""

    actor: str | None = None
    tool: str | None = None
    per_tool: dict[str, str] = Field(default_factory=dict)
    prefer_measured: bool | None = None
    seed: int | None = None


class ReplaySettingsRecord(ResultModel):
    """Every setting the replay measured and simulated with (``replay.ReplaySettings``)."""

    k: int = 3
    matcher: str = "normalised"
    threshold: Number = 0.8
    latency: LatencyModelRecord = Field(default_factory=LatencyModelRecord)
    speculator_latency: dict[str, str] = Field(default_factory=dict)
    latency_samples: int | None = None
    cost_per_call: Number | None = None
    costs: dict[str, Number] = Field(default_factory=dict)


class ReplaySummary(Versioned):
    """``summary.json`` of ``speculate replay``: the run's settings, then one
    :class:`PredictorSummary` per predictor under its own name, then paired tests."""

    FILE = "DIR/summary.json (speculate replay)"

    traces: int | None = None
    steps: int | None = None
    k: int | None = None
    matcher: str | None = None
    threshold: Number | None = Field(None, description="the Jaccard threshold (matcher jaccard only)")
    latency_model: LatencyModelRecord | None = None
    speculator_latency: dict[str, str] = Field(default_factory=dict)
    settings: ReplaySettingsRecord | None = Field(None, description="since schema 1")
    predictors: list[str] = Field(default_factory=list)
    paired: dict[str, dict[str, PairedTest]] = Field(
        default_factory=dict, description='"B vs A" → flag → test'
    )
    __pydantic_extra__: dict[str, PredictorSummary] = Field(init=False)  # type: ignore[assignment]

    @model_serializer(mode="wrap")
    def _paired_last(self, handler: Any) -> dict[str, Any]:
        """The paired tests after the predictors, as replay has always written them."""
        data = handler(self)
        if "paired" in data:
            data["paired"] = data.pop("paired")
        return data

    @property
    def results(self) -> dict[str, PredictorSummary]:
        """Every predictor's summary, in replay order (names without one are left out)."""
        extra = self.__pydantic_extra__ or {}
        return {name: extra[name] for name in self.predictors if name in extra}

    def best(self) -> str | None:
        """The highest name+arguments hit@1 (ties: the later, usually learned, one)."""
        best, best_rate = None, -1.0
        for name, p in self.results.items():
            if p.hit_at_1 is not None and p.hit_at_1 >= best_rate:
                best, best_rate = name, float(p.hit_at_1)
        return best

    def fastest(self) -> str | None:
        """The highest simulated speed-up (ties: the better hit@1)."""
        scored = [
            (float(p.speedup), float(p.hit_at_1 or 0), name)
            for name, p in self.results.items()
            if p.speedup is not None
        ]
        return max(scored)[2] if scored else None


class LatencyRecord(ResultModel):
    """``latency.json``: one model predictor's batch-1 next-call seconds."""

    fingerprint: str | None = None
    cached_prefix: list[Number] = Field(default_factory=list)
    no_cached_prefix: list[Number] = Field(default_factory=list)
    cached_prefix_stats: LatencyStats | None = None
    no_cached_prefix_stats: LatencyStats | None = None


class LatencyFile(ResultModel):
    """``latency.json``: predictor name → :class:`LatencyRecord`."""

    __pydantic_extra__: dict[str, LatencyRecord] = Field(init=False)  # type: ignore[assignment]

    @property
    def records(self) -> dict[str, LatencyRecord]:
        return dict(self.__pydantic_extra__ or {})


class TimelineStep(ResultModel):
    """One step simulated with the top guess launched (``simulate.simulate_step``)."""

    step: int = 0
    tool: str | None = None
    actor: Number = 0.0
    tool_seconds: Number = 0.0
    speculator: Number = 0.0
    hit: bool = Field(False, description="the speculative result was used")
    launched: int = Field(0, description="calls launched in time")
    in_time: bool = False
    baseline: Number = 0.0
    speculative: Number = 0.0
    saved: Number = 0.0


class TimelineRow(ResultModel):
    """``timeline.jsonl``: one trace as one predictor's simulation ran it (since schema 1)."""

    predictor: str = ""
    id: str = ""
    steps: list[TimelineStep] = Field(default_factory=list)

    @property
    def baseline(self) -> float:
        return sum(s.baseline for s in self.steps)

    @property
    def speculative(self) -> float:
        return sum(s.speculative for s in self.steps)

    def interest(self) -> tuple[float, int, int]:
        """How much a picture of this trace shows: time saved, hits and misses both, a few steps."""
        used = sum(s.hit for s in self.steps)
        saved = sum(s.saved for s in self.steps)
        return (round(saved, 3), int(0 < used < len(self.steps)), min(len(self.steps), 6))
