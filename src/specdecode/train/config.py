"""Training configuration: the prototype's flags and defaults, plus what a speculator needs.

Precedence: these defaults < a YAML ``--config`` file < flags given on the command line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from specdecode.errors import InputError


@dataclass
class TrainConfig:
    """Everything one training run needs; saved beside the adapter as ``train_config.yaml``."""

    train_file: str = ""
    output_dir: str = ""
    val_file: str | None = None
    val_split: float | None = None
    model_name: str = "smollm2-135m"
    form: str = "steps"
    registry: str = "tools4"
    tool_style: str = "compact"
    max_length: int = 2048
    learning_rate: float = 2e-4
    per_device_train_batch_size: int = 2
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 8
    num_train_epochs: float = 3.0
    max_steps: int = -1
    eval_steps: int = 50
    save_steps: int = 50
    logging_steps: int = 10
    warmup_ratio: float = 0.03
    lr_scheduler_type: str = "cosine"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    early_stopping_patience: int = 0
    padding_free: bool | None = None  # None = auto: on with CUDA, length-grouped batches on CPU
    mixed_precision: str = "auto"
    seed: int = 42
    load_in_4bit: bool = False
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    save_total_limit: int = 2
    resume: bool = False
    skip_invalid: bool = False

    def validate(self) -> None:
        """Refuse combinations that would fail late or silently."""
        if not self.train_file:
            raise InputError("--train_file is required")
        if not self.output_dir:
            raise InputError("--output_dir is required")
        if self.val_file is None and self.val_split is None:
            raise InputError("no validation data: give --val_file, or --val-split 0.1 to hold out a share")
        if self.val_split is not None and not 0 < self.val_split < 1:
            raise InputError(f"--val-split must be between 0 and 1, got {self.val_split}")
        if self.mixed_precision not in ("auto", "bf16", "fp16", "no"):
            raise InputError(
                f"--mixed_precision must be auto, bf16, fp16 or no, got {self.mixed_precision!r}"
            )
        if self.form not in ("plain", "native", "steps"):
            raise InputError(f"--form must be plain, native or steps, got {self.form!r}")
        if self.save_steps % self.eval_steps:
            raise InputError(
                f"--save_steps ({self.save_steps}) must be a multiple of --eval_steps ({self.eval_steps}) "
                "so that the best checkpoint by validation loss is kept"
            )
        for name in ("max_length", "per_device_train_batch_size", "gradient_accumulation_steps", "lora_r"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name} must be at least 1")

    def to_yaml(self) -> str:
        return yaml.safe_dump(asdict(self), sort_keys=False)


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the YAML file, then the flags that were given (``None`` = not given)."""
    values: dict[str, Any] = {}
    names = {f.name for f in fields(TrainConfig)}
    if path is not None:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise InputError("config file not found", path) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise InputError(
                f"invalid YAML: {getattr(exc, 'problem', exc)}", path, mark.line + 1 if mark else None
            ) from None
        if not isinstance(data, dict):
            raise InputError("a config file is a mapping of option: value", path)
        for key, value in data.items():
            key = str(key).replace("-", "_")
            if key not in names:
                raise InputError(f"unknown option {key!r}", path)
            values[key] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    config = TrainConfig(**values)
    for f in fields(TrainConfig):  # YAML may give "2e-4" as a string; coerce to the field's type
        value = getattr(config, f.name)
        kind = str(f.type)
        try:
            if value is not None and kind.startswith("float") and not isinstance(value, float):
                setattr(config, f.name, float(value))
            elif value is not None and kind.startswith("int") and not isinstance(value, int):
                setattr(config, f.name, int(value))
        except (TypeError, ValueError):
            raise InputError(f"option {f.name!r}: expected {kind}, got {value!r}", path) from None
    config.validate()
    return config
