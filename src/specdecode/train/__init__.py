"""Stage 4 — LoRA fine-tuning of the speculator (TRL SFTTrainer + PEFT)."""

from specdecode.settings import TrainConfig, load_config
from specdecode.train.data import DataReport, build_examples, tokenize_example
from specdecode.train.merge import merge_adapter
from specdecode.train.sft import train

__all__ = [
    "DataReport",
    "TrainConfig",
    "build_examples",
    "load_config",
    "merge_adapter",
    "tokenize_example",
    "train",
]
