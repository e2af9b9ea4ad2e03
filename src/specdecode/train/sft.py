"""The training recipe of a speculator, in three visible steps: ``setup`` → ``train_model`` → ``save``.

TRL's ``SFTTrainer`` with a PEFT LoRA on all linear projections. Examples are tokenised
here (``specdecode.train.data``) so the loss covers exactly the assistant's tokens and its
end-of-turn token; by default they are packed padding-free. Runs unchanged on one CPU, one
GPU, or many processes under ``accelerate launch`` / ``torchrun`` (only rank 0 writes).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from specdecode.errors import InputError
from specdecode.jsonl import write_json
from specdecode.outputs import write_text
from specdecode.prompts import PromptOptions
from specdecode.records import ChatRecord
from specdecode.registry import load_registry
from specdecode.results import TrainingCurves, TrainingSummary
from specdecode.settings import TrainConfig
from specdecode.train.batching import (
    MemoryPlan,
    ModelShape,
    free_memory_bytes,
    measured_peak_gib,
    memory_release_callback,
    plan_memory,
)
from specdecode.train.checkpoints import existing_checkpoints, last_complete_checkpoint
from specdecode.train.data import DataReport, build_examples, load_chat_file
from specdecode.train.loss import speculator_trainer
from specdecode.train.outputs import curves, model_card

console = Console(stderr=True)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def hold_out(records: list[ChatRecord], share: float, seed: int) -> tuple[list[ChatRecord], list[ChatRecord]]:
    """Split off a validation share by source trace, so steps of one trace never straddle."""
    groups: dict[str, list[ChatRecord]] = defaultdict(list)
    for record in records:
        groups[str(getattr(record, "source_id", None) or record.id)].append(record)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_val = max(1, round(len(keys) * share))
    val_keys = set(keys[:n_val])
    train = [r for k in sorted(groups) if k not in val_keys for r in groups[k]]
    val = [r for k in sorted(groups) if k in val_keys for r in groups[k]]
    return train, val


def _print_data(reports: list[DataReport]) -> None:
    table = Table(title="Training data")
    for column in (
        "file",
        "examples",
        "kept",
        "truncated",
        "dropped (too long)",
        "dropped (empty)",
        "tokens",
        "trained tokens",
    ):
        table.add_column(column, justify="left" if column == "file" else "right")
    for r in reports:
        table.add_row(
            r.path,
            *(
                str(v)
                for v in (
                    r.examples,
                    r.kept,
                    r.truncated,
                    r.dropped_too_long,
                    r.dropped_empty,
                    r.tokens,
                    r.trained_tokens,
                )
            ),
        )
    console.print(table)


def prepare_data(config: TrainConfig, tokenizer: Any) -> tuple[list[dict], list[dict], list[DataReport]]:
    """Read, convert and tokenise the train and validation files; report every count."""
    registry = load_registry(config.registry)
    options = PromptOptions(tool_style=config.tool_style)  # type: ignore[arg-type]
    load = lambda p: load_chat_file(p, config.form, registry, options, config.skip_invalid)  # noqa: E731
    train_records = load(config.train_file)
    if config.val_file:
        val_records, val_name = load(config.val_file), config.val_file
    else:
        train_records, val_records = hold_out(train_records, config.val_split or 0.1, config.seed)
        val_name = f"{config.train_file} (held out {config.val_split:.0%})"
    reports = [DataReport(config.train_file), DataReport(val_name)]
    train = build_examples(tokenizer, train_records, config.max_length, reports[0])
    val = build_examples(tokenizer, val_records, config.max_length, reports[1])
    if not train or not val:
        raise InputError(
            "no usable examples after tokenisation", config.train_file if not train else val_name
        )
    return train, val, reports


def use_padding_free(config: TrainConfig) -> bool:
    """Padding-free packing pays off only with varlen attention kernels (flash-attention on CUDA).
    Without them the block mask of a packed batch costs more than padding saves: on an H100 with
    SDPA, padded batches trained 2x faster (BENCHMARKS.md), and on CPU length-grouped padded
    batches are faster too. So auto = on only where flash-attention is installed."""
    import importlib.util

    import torch

    if config.padding_free == "auto":
        return torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None
    return config.padding_free == "on"


def _training_args(config: TrainConfig) -> Any:
    import torch
    from trl import SFTConfig

    from specdecode.models import mixed_precision

    on_gpu = torch.cuda.is_available()
    precision = mixed_precision(config.mixed_precision)
    padding_free = use_padding_free(config)
    multi = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return SFTConfig(
        output_dir=config.output_dir,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of the total steps
        lr_scheduler_type=config.lr_scheduler_type,
        eval_strategy="steps",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=not config.evaluates_at_end_only,  # else the last is the one evaluated
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        padding_free=padding_free,
        max_length=None,  # examples are truncated (and counted) in prepare_data
        train_sampling_strategy="random" if padding_free else "group_by_length",
        bf16=precision == "bf16",  # autocast; weights stay fp32 (on CPU: AMX / AVX512-BF16)
        fp16=precision == "fp16",
        use_cpu=not on_gpu,
        ddp_backend=("nccl" if on_gpu else "gloo") if multi else None,
        ddp_find_unused_parameters=False if multi else None,
        gradient_checkpointing=False,  # per layer, by the memory plan (checkpoint_layers)
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        dataloader_num_workers=0,
    )


@dataclass
class Run:
    """What setup hands to training: the trainer, its data and where it starts from."""

    trainer: Any
    tokenizer: Any
    train_rows: list[dict]
    val_rows: list[dict]
    reports: list[DataReport]
    last_checkpoint: str | None
    started: float
    memory: MemoryPlan | None = None


PLAN_FILE = "memory_plan.json"


def plan_batches(config: TrainConfig, model: Any, rows: list[dict], free_bytes: int) -> MemoryPlan:
    """The micro-batch plan: token budget and gradient checkpointing (see ``train.batching``).

    A resumed run reuses the plan stored in the output folder, so it continues the same micro-batches
    whatever memory is free now. One line, exit 2, when one example cannot fit."""
    import torch

    from specdecode.models import mixed_precision

    stored = Path(config.output_dir) / PLAN_FILE
    if config.resume and stored.is_file():
        try:
            plan = MemoryPlan.from_dict(json.loads(stored.read_text(encoding="utf-8")))
        except (ValueError, TypeError, KeyError):
            plan = None  # unreadable: plan again
        if plan is not None and config.max_tokens_per_batch in (None, plan.max_tokens_per_batch or 0):
            return plan
    padding_free = use_padding_free(config)
    requested = config.max_tokens_per_batch
    if padding_free and requested is None:
        requested = 0  # packed batches: no padding to bound
    shape = ModelShape.of(model.config, sum(p.numel() for p in model.parameters()))
    try:
        return plan_memory(
            shape,
            max_length=config.max_length,
            longest_example=max(len(r["input_ids"]) for r in rows),
            batch_size=max(config.per_device_train_batch_size, config.per_device_eval_batch_size),
            requested_budget=requested,
            checkpointing=config.gradient_checkpointing,
            free_bytes=free_bytes,
            on_gpu=torch.cuda.is_available(),
            half=mixed_precision(config.mixed_precision) in ("bf16", "fp16"),
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None


def checkpoint_layers(model: Any, count: int) -> list[Any]:
    """Switch gradient checkpointing on for the model when ``count`` > 0 and return its decoder
    layers; ``set_checkpointed`` then picks how many of them checkpoint (each one trades another
    forward pass of itself for its activations)."""
    if count <= 0:
        return []
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    layers = [m for m in model.modules() if hasattr(m, "gradient_checkpointing") and m is not model]
    decoder = [m for m in layers if type(m).__name__.endswith(("DecoderLayer", "Block"))]
    set_checkpointed(decoder, count)
    return decoder


def set_checkpointed(layers: list[Any], count: int) -> None:
    for i, layer in enumerate(layers):
        layer.gradient_checkpointing = i < count


def _print_plan(plan: MemoryPlan) -> None:
    budget = (
        "padded batches"
        if plan.max_tokens_per_batch is None
        else f"micro-batches ≤ {plan.max_tokens_per_batch} tokens"
    )
    console.print(
        f"memory: {plan.free_gib} GiB free; {budget} ({plan.reason}); gradient checkpointing on "
        f"{plan.checkpointed_layers} of {plan.layers} layers; estimated peak {plan.estimated_peak_gib} GiB",
        highlight=False,
        soft_wrap=True,
    )


def setup(config: TrainConfig) -> Run:
    """Check the output folder, load tokenizer, data and model, wrap the model in LoRA + trainer."""
    from datasets import Dataset
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers import EarlyStoppingCallback, set_seed

    from specdecode.models import load_model, load_tokenizer, resolve_model

    config.validate_run()
    started = time.time()
    output_dir = Path(config.output_dir)
    checkpoints = existing_checkpoints(output_dir)
    if checkpoints and not config.resume:
        raise InputError(
            "holds checkpoints of an earlier run: pass --resume to continue it, or choose a new --output_dir",
            output_dir,
        )
    set_seed(config.seed)
    free_bytes = free_memory_bytes()  # before anything big is loaded
    model_path = resolve_model(config.model_name)
    tokenizer = load_tokenizer(model_path, config.trust_remote_code)
    train_rows, val_rows, reports = prepare_data(config, tokenizer)
    if _rank() == 0:
        _print_data(reports)
    model = load_model(
        model_path, load_in_4bit=config.load_in_4bit, trust_remote_code=config.trust_remote_code
    )
    plan = plan_batches(config, model, train_rows + val_rows, free_bytes)
    if _rank() == 0:
        _print_plan(plan)
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json(output_dir / PLAN_FILE, plan.as_dict())
    if config.load_in_4bit:
        model = prepare_model_for_kbit_training(model, False)
    decoder_layers = checkpoint_layers(model, plan.checkpointed_layers)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    callbacks = [memory_release_callback()]  # CPU: freed activations back to the system each update
    if config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
    trainer = speculator_trainer()(
        model=model,
        args=_training_args(config),
        processing_class=tokenizer,
        peft_config=lora,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(val_rows),
        callbacks=callbacks,
    )
    trainer.token_budget = plan.max_tokens_per_batch
    if decoder_layers:
        trainer.checkpointing = (decoder_layers, plan)
    trainer.padded_budget = not use_padding_free(config)
    last = last_complete_checkpoint(output_dir) if checkpoints else None
    if config.resume and last is None:
        console.print("[yellow]--resume: no checkpoint found, starting from the beginning[/]")
    return Run(trainer, tokenizer, train_rows, val_rows, reports, last, started, plan)


def train_model(config: TrainConfig, run: Run) -> dict[str, Any]:
    """Train (from the last checkpoint when resuming) and return the run's summary."""
    import torch

    from specdecode.models import mixed_precision

    trainer = run.trainer
    initial = None if run.last_checkpoint else trainer.evaluate()["eval_loss"]
    result = trainer.train(resume_from_checkpoint=run.last_checkpoint)
    final = {"eval_loss": final_eval_loss(trainer)}
    summary = TrainingSummary.new(
        **{
            "global_step": trainer.state.global_step,
            "initial_eval_loss": initial,
            "best_eval_loss": trainer.state.best_metric,
            "best_checkpoint": trainer.state.best_model_checkpoint,
            "final_eval_loss": final["eval_loss"],
            "final_eval_perplexity": math.exp(min(final["eval_loss"], 50)),
            "train_loss": result.training_loss,
            "train_examples": len(run.train_rows),
            "val_examples": len(run.val_rows),
            "data": [r.summary() for r in run.reports],
            "world_size": int(os.environ.get("WORLD_SIZE", "1")),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "mixed_precision": mixed_precision(config.mixed_precision),
            "seconds": round(time.time() - run.started, 1),
            "resumed_from": run.last_checkpoint,
            "memory": _memory_summary(run, result.metrics),
        }
    )
    return summary.dump()


BEST_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "pytorch_model.bin")


def final_eval_loss(trainer: Any) -> float:
    """The validation loss of the model training ended with. ``load_best_model_at_end`` reloads the
    best checkpoint, whose loss was measured when it was saved: that number is reused, so the
    validation set is not evaluated a second time; so is the loss of an evaluation at the last step
    when nothing is reloaded (``evaluates_at_end_only``). Evaluated now otherwise (no evaluation
    during training, or the best checkpoint's weights are gone)."""
    state = trainer.state
    best = state.best_model_checkpoint
    reloaded = best is not None and any((Path(best) / name).is_file() for name in BEST_WEIGHTS)
    if reloaded and state.best_metric is not None and trainer.args.load_best_model_at_end:
        return float(state.best_metric)
    last = [e for e in state.log_history if "eval_loss" in e]
    if not trainer.args.load_best_model_at_end and last and last[-1].get("step") == state.global_step:
        return float(last[-1]["eval_loss"])  # the weights training ended with, evaluated at that step
    return float(trainer.evaluate()["eval_loss"])


def _memory_summary(run: Run, metrics: dict[str, Any]) -> dict[str, Any]:
    """The micro-batch plan, the estimated and the measured peak, and what the batches were."""
    collators = getattr(run.trainer, "budget_collators", [])
    tokens = sum(len(r["input_ids"]) for r in run.train_rows)
    return {
        **(run.memory.as_dict() if run.memory else {}),
        "measured_peak_gib": measured_peak_gib(),
        "micro_batches": sum(c.micro_batches for c in collators),
        "largest_micro_batch_tokens": max((c.largest for c in collators), default=None),
        "examples_over_budget": sum(c.oversized for c in collators),
        "train_tokens_per_epoch": tokens,
        "train_tokens_seen": getattr(run.trainer, "train_tokens_seen", None),
        "checkpointed_layer_share": (
            round(run.trainer.checkpointed_passes / run.trainer.layer_passes, 3)
            if getattr(run.trainer, "layer_passes", 0)
            else 0.0
        ),
        "train_runtime_seconds": metrics.get("train_runtime"),
    }


def save(config: TrainConfig, run: Run, summary: dict[str, Any]) -> None:
    """Rank 0 writes the adapter (best by validation loss), tokenizer, settings, registry, curves,
    summary and model card; every file atomically."""
    import yaml

    trainer = run.trainer
    if not trainer.is_world_process_zero():
        return
    output_dir = Path(config.output_dir)
    trainer.save_model(str(output_dir))
    run.tokenizer.save_pretrained(str(output_dir))
    write_text(output_dir / "train_config.yaml", config.to_yaml())
    registry = load_registry(config.registry)
    write_text(
        output_dir / "tools.yaml", yaml.safe_dump([t.model_dump() for t in registry.tools], sort_keys=False)
    )
    TrainingCurves.new(**curves(trainer.state.log_history, summary["initial_eval_loss"])).write(
        output_dir / "training_curves.json"
    )
    TrainingSummary.model_validate(summary).write(output_dir / "training_summary.json")
    write_text(output_dir / "README.md", model_card(config, summary))
    console.print(
        f"[green]✓[/] adapter → {output_dir} (step {summary['global_step']}, "
        f"validation loss {summary['final_eval_loss']:.4f}, best {summary['best_eval_loss']})"
    )


def fit(config: TrainConfig) -> tuple[Any, dict[str, Any]]:
    """The recipe: setup → train → save. Returns the trainer (its model holds the best adapter)
    and the summary that is also written as ``training_summary.json``."""
    run = setup(config)
    summary = train_model(config, run)
    save(config, run, summary)
    return run.trainer, json.loads(json.dumps(summary))


def train(config: TrainConfig) -> dict[str, Any]:
    """Run one training; returns the summary that is also written as ``training_summary.json``."""
    return fit(config)[1]
