"""Next-call predictors behind one interface (:class:`Predictor`), each registered by name in
:mod:`.registry`: the ``frequency`` and ``pattern`` tables and their ablations (``pattern-nocopy``,
``bigram-memory``, ``pattern-v1``), the LLM speculator (``base``/``lora``), the ``hybrid``, and
``verify`` (the table's drafts scored by the model)."""

from specdecode.speculate.predictors import registry
from specdecode.speculate.predictors.base import Prediction, Predictor, StepContext, contexts_of, dedupe
from specdecode.speculate.predictors.model import HybridPredictor, ModelPredictor
from specdecode.speculate.predictors.registry import BuildContext, ModelSettings, PredictorSpec, register
from specdecode.speculate.predictors.table import (
    BigramMemoryPredictor,
    FrequencyPredictor,
    PatternPredictor,
    TablePredictor,
    fit_tables,
    load_table,
)
from specdecode.speculate.predictors.table_v1 import LegacyPatternPredictor
from specdecode.speculate.predictors.verify import Calibration, DraftScorer, VerifyPredictor

__all__ = [
    "BigramMemoryPredictor",
    "BuildContext",
    "Calibration",
    "DraftScorer",
    "FrequencyPredictor",
    "HybridPredictor",
    "LegacyPatternPredictor",
    "ModelPredictor",
    "ModelSettings",
    "PatternPredictor",
    "Prediction",
    "Predictor",
    "PredictorSpec",
    "StepContext",
    "TablePredictor",
    "VerifyPredictor",
    "contexts_of",
    "dedupe",
    "fit_tables",
    "load_table",
    "register",
    "registry",
]
