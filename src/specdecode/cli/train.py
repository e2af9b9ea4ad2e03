"""``specdecode train`` and ``specdecode merge``: LoRA fine-tuning and folding the adapter in."""

from __future__ import annotations

import typer

from specdecode.cli._common import done, guard, registry_file, settings_command
from specdecode.settings import MergeSettings, TrainConfig

train_app = typer.Typer()


@settings_command(train_app, "train", TrainConfig)
def train_cmd(settings: TrainConfig) -> None:
    """LoRA fine-tuning of a speculator with TRL + PEFT (the prototype's flags work).

    Works under `accelerate launch` and `torchrun` (DDP; gloo on CPU); only rank 0 writes.
    """
    from specdecode.train import train

    guard(
        inputs=[settings.train_file, settings.val_file, registry_file(settings.registry)],
        trees={"--output-dir": settings.output_dir},
    )
    train(settings)


@settings_command(train_app, "merge", MergeSettings)
def merge_cmd(settings: MergeSettings) -> None:
    """Merge a LoRA adapter into its base model and save a full model."""
    from specdecode.train import merge_adapter

    guard(input_folders=[settings.lora_dir], trees={"--out": settings.out})
    merged = merge_adapter(settings.lora_dir, settings.out, settings.base_model, settings.trust_remote_code)
    done(f"merged model → {merged}")
