"""Next-call predictors behind one interface (:class:`Predictor`): ``frequency`` and
``pattern`` tables, the LLM speculator (``base``/``lora``) and the ``hybrid``."""

from specdecode.speculate.predictors.base import Prediction, Predictor, StepContext, contexts_of, dedupe
from specdecode.speculate.predictors.model import HybridPredictor, ModelPredictor
from specdecode.speculate.predictors.table import (
    FrequencyPredictor,
    PatternPredictor,
    fit_tables,
    load_table,
)

__all__ = [
    "FrequencyPredictor",
    "HybridPredictor",
    "ModelPredictor",
    "PatternPredictor",
    "Prediction",
    "Predictor",
    "StepContext",
    "contexts_of",
    "dedupe",
    "fit_tables",
    "load_table",
]
