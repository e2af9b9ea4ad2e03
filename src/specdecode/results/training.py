"""``train``: ``training_summary.json`` and ``training_curves.json`` beside the adapter."""

from __future__ import annotations

from pydantic import Field

from specdecode.results.base import Number, ResultModel, Versioned


class DataReport(ResultModel):
    """What became of one data file (``train.data.DataReport.summary``)."""

    path: str = ""
    examples: int | None = None
    kept: int | None = None
    truncated: int | None = None
    dropped_too_long: int | None = None
    dropped_empty: int | None = None
    tokens: int | None = None
    trained_tokens: int | None = None
    max_length_seen: int | None = None
    windows: dict[str, int] | None = Field(None, description="conversation form: how records became windows")


class MemorySummary(ResultModel):
    """The micro-batch plan (``train.batching.MemoryPlan``), the estimated and measured peaks and
    what the batches were."""

    max_tokens_per_batch: int | None = None
    checkpointed_layers: int | None = None
    layers: int | None = None
    estimated_peak_gib: Number | None = None
    free_gib: Number | None = None
    reason: str | None = None
    usable_bytes: int | None = None
    shape: dict[str, int] | None = None
    half: bool | None = None
    every_layer: bool | None = None
    gradient_checkpointing: bool | None = None
    measured_peak_gib: Number | None = None
    micro_batches: int | None = None
    largest_micro_batch_tokens: int | None = None
    examples_over_budget: int | None = None
    train_tokens_per_epoch: int | None = None
    train_tokens_seen: int | None = None
    checkpointed_layer_share: Number | None = None
    train_runtime_seconds: Number | None = None


class TrainingSummary(Versioned):
    """``training_summary.json``: losses, data, device and memory of one training run."""

    FILE = "ADAPTER/training_summary.json (train)"

    global_step: int | None = None
    initial_eval_loss: Number | None = Field(None, description="null when resumed from a checkpoint")
    best_eval_loss: Number | None = None
    best_checkpoint: str | None = None
    final_eval_loss: Number | None = None
    final_eval_perplexity: Number | None = None
    train_loss: Number | None = None
    train_examples: int | None = None
    val_examples: int | None = None
    data: list[DataReport] = Field(default_factory=list)
    world_size: int | None = None
    device: str | None = None
    mixed_precision: str | None = None
    seconds: Number | None = None
    resumed_from: str | None = None
    memory: MemorySummary | None = None


class CurvePoint(ResultModel):
    step: Number = 0
    loss: Number | None = None
    learning_rate: Number | None = None
    perplexity: Number | None = None


class TrainingCurves(Versioned):
    """``training_curves.json``: training loss per logging step, validation loss per evaluation."""

    FILE = "ADAPTER/training_curves.json (train)"

    train: list[CurvePoint] = Field(default_factory=list)
    validation: list[CurvePoint] = Field(default_factory=list)


class AdapterConfig(ResultModel):
    """The fields of PEFT's ``adapter_config.json`` the report shows."""

    target_modules: list[str] | str | None = None


class TrainConfigRecord(ResultModel):
    """The fields of ``train_config.yaml`` (``settings.TrainConfig``) the report shows; the rest
    are kept as they are."""

    train_file: str | None = None
    val_file: str | None = None
    model_name: str | None = None
    form: str | None = None
    registry: str | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    seed: int | None = None
