"""Typed results: one pydantic model per file a command writes, versioned by ``schema_version``.

Writers (``evaluate.run``, ``speculate.replay``, ``train.sft``, ``demo``, ``speculate.live``)
build these models and write them; readers (``report``, ``demo``, the CLI) read through them.
Files written by specdecode 0.1 (schema 0) still load. The JSON Schemas are published in
``docs/formats.md`` (:mod:`specdecode.results.schemas` writes them).
"""

from specdecode.results.base import (
    UNREADABLE,
    Number,
    ResultModel,
    Versioned,
    as_row,
    read_result,
    read_rows,
)
from specdecode.results.common import Breakdown, Call, PairedTest, Rate
from specdecode.results.demo import (
    STAGES,
    AgentCheck,
    AgentStage,
    CompareStage,
    DataStage,
    SpeculateStage,
    StageRecord,
    StageResult,
    TrainStage,
)
from specdecode.results.evaluation import (
    Agreement,
    Answer,
    CompareRow,
    CompareSummary,
    EvalRow,
    EvalSummary,
    Fingerprint,
    LatencySummary,
    ModelSummary,
)
from specdecode.results.replay import (
    LatencyFile,
    LatencyRecord,
    PredictorSummary,
    ReplayRow,
    ReplaySettingsRecord,
    ReplaySummary,
    TimelineRow,
    TimelineStep,
)
from specdecode.results.training import (
    AdapterConfig,
    TrainConfigRecord,
    TrainingCurves,
    TrainingSummary,
)

__all__ = [
    "STAGES",
    "UNREADABLE",
    "AdapterConfig",
    "AgentCheck",
    "AgentStage",
    "Agreement",
    "Answer",
    "Breakdown",
    "Call",
    "CompareRow",
    "CompareStage",
    "CompareSummary",
    "DataStage",
    "EvalRow",
    "EvalSummary",
    "Fingerprint",
    "LatencyFile",
    "LatencyRecord",
    "LatencySummary",
    "ModelSummary",
    "Number",
    "PairedTest",
    "PredictorSummary",
    "Rate",
    "ReplayRow",
    "ReplaySettingsRecord",
    "ReplaySummary",
    "ResultModel",
    "SpeculateStage",
    "StageRecord",
    "StageResult",
    "TimelineRow",
    "TimelineStep",
    "TrainConfigRecord",
    "TrainStage",
    "TrainingCurves",
    "TrainingSummary",
    "Versioned",
    "as_row",
    "read_result",
    "read_rows",
]
