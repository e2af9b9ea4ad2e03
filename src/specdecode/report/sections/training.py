"""The training section: what was trained, its loss curves, validation loss before and after."""

from __future__ import annotations

import math

from specdecode.report import figures as F
from specdecode.report.collect import Training
from specdecode.report.context import Context
from specdecode.report.document import Block, Card, Heading, Para, Section, Table
from specdecode.report.format import code, num, number
from specdecode.results import TrainConfigRecord, TrainingSummary


def overview(where: str, config: TrainConfigRecord, summary: TrainingSummary) -> Para | None:
    parts = []
    if config.model_name:
        parts.append(f"base model {code(config.model_name)}")
    if config.lora_r:
        parts.append(
            f"LoRA r={config.lora_r}, α={config.lora_alpha if config.lora_alpha is not None else '?'}"
        )
    if summary.global_step:
        parts.append(f"{summary.global_step} optimizer steps")
    if summary.train_examples:
        val = summary.val_examples if summary.val_examples is not None else "?"
        parts.append(f"{summary.train_examples} training / {val} validation examples")
    if summary.seconds:
        parts.append(
            f"{summary.seconds:.0f} s on {summary.device or '?'} "
            f"× {summary.world_size if summary.world_size is not None else 1}"
        )
    return Para(f"Adapter {code(where)}: " + "; ".join(parts) + ".") if parts else None


def losses(summary: TrainingSummary) -> Table | None:
    rows = []
    for label, loss, ppl in (
        ("before training", summary.initial_eval_loss, None),
        ("best", summary.best_eval_loss, None),
        ("after training", summary.final_eval_loss, summary.final_eval_perplexity),
    ):
        if number(loss) is not None:
            rows.append([label, num(loss), num(ppl if ppl is not None else math.exp(loss), 2)])  # type: ignore[arg-type]
    return Table(["validation", "loss", "perplexity"], rows) if rows else None


def loss_card(summary: TrainingSummary) -> Card | None:
    if not (summary.initial_eval_loss and summary.final_eval_loss):
        return None
    steps = summary.global_step if summary.global_step is not None else "?"
    return Card(
        "Validation loss",
        f"{summary.initial_eval_loss:.2f} → {summary.final_eval_loss:.2f}",
        f"{steps} LoRA steps",
    )


def adapter_blocks(ctx: Context, training: Training, index: int, several: bool) -> list[Block | None]:
    where = ctx.rel(training.dir)
    summary = training.summary or TrainingSummary()
    blocks: list[Block | None] = [Heading(f"Adapter {code(where)}")] if several else []
    blocks.append(overview(where, training.config or TrainConfigRecord(), summary))
    if training.curves is not None:
        blocks.append(
            ctx.figure(
                F.loss_curves(training.curves),
                f"loss_curves{'' if index == 0 else f'_{index}'}",
                "Training loss (per logging step) and validation loss (per evaluation); the dotted "
                "line is the learning-rate schedule.",
            )
        )
    if training.summary is not None:
        blocks.append(losses(summary))
        card = loss_card(summary)
        if card is not None:
            ctx.cards.append(card)
    return blocks


def training_section(ctx: Context) -> Section | None:
    trainings = ctx.data.trainings
    if not trainings:
        return None
    section = Section("training", "Training")
    for i, training in enumerate(trainings):
        section.add(*adapter_blocks(ctx, training, i, len(trainings) > 1))
    return section
