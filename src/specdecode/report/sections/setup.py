"""The setup section: models, adapters, registries and seeds as the runs recorded them, the data
files with their hashes, and the software and machine the report was written on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from specdecode.report.context import Context
from specdecode.report.document import Heading, Para, Section, Table
from specdecode.report.format import code, size
from specdecode.report.machine import machine, package_versions
from specdecode.results import TrainConfigRecord


@dataclass
class Recorded:
    """What the runs say they used: name → where it was used."""

    models: dict[str, str] = field(default_factory=dict)
    adapters: dict[str, str] = field(default_factory=dict)
    registries: dict[str, str] = field(default_factory=dict)
    seeds: dict[str, str] = field(default_factory=dict)


def recorded(ctx: Context) -> Recorded:
    """Models, adapters, registries and seeds of the trainings, evaluations and replays."""
    out = Recorded()
    for training in ctx.data.trainings:
        where = ctx.rel(training.dir)
        config = training.config or TrainConfigRecord()
        if config.model_name:
            out.models[config.model_name] = f"trained in {where}"
        parts = [
            f"{k}={getattr(config, k)}"
            for k in ("lora_r", "lora_alpha", "form")
            if getattr(config, k) is not None
        ]
        targets = training.adapter_config.target_modules if training.adapter_config else None
        if targets:
            parts.append(
                "targets " + ", ".join(sorted(targets)) if isinstance(targets, list) else str(targets)
            )
        out.adapters[where] = " · ".join(parts) or "adapter"
        if config.registry:
            out.registries[config.registry] = f"training ({where})"
        if config.seed is not None:
            out.seeds[f"training ({where})"] = str(config.seed)
    for result in [*ctx.data.comparisons, *ctx.data.evals]:
        model, adapter, registry, seed = map(
            result.summary.fingerprint.field, ("base_model", "adapter", "registry", "seed")
        )
        where = ctx.rel(result.path)
        if model:
            out.models.setdefault(str(model), f"evaluated in {where}")
        if adapter:
            out.adapters.setdefault(str(adapter), f"evaluated in {where}")
        if registry:
            out.registries.setdefault(f"sha256:{registry}", f"evaluation ({where})")
        if seed is not None:
            out.seeds[f"evaluation ({where})"] = str(seed)
    for replay in ctx.data.replays:
        model = replay.summary.latency_model
        if model is not None and model.seed is not None:
            out.seeds[f"latency draws ({ctx.rel(replay.dir)})"] = str(model.seed)
    return out


def recorded_table(ctx: Context) -> Table | None:
    info = recorded(ctx)
    rows = []
    for label, entries in (
        ("models", info.models),
        ("adapters", info.adapters),
        ("registry", info.registries),
    ):
        for name, where in entries.items():
            rows.append([label, code(name), where])
            label = ""
    label = "seeds"
    for where, seed in info.seeds.items():
        rows.append([label, code(seed), where])
        label = ""
    return Table(["", "value", "where"], rows, align="lll") if rows else None


def data_files(ctx: Context) -> list[Heading | Table]:
    files = ctx.data.data_files
    if not files:
        return []
    return [
        Heading("Data files"),
        Table(
            ["file", "role", "size", "SHA-256"],
            [[code(f.path), f.role, size(f.bytes), code(f.sha256)] for f in files],
            align="llrl",
            wide=True,
        ),
    ]


def software(generated: str) -> list[Heading | Para | Table]:
    return [
        Heading("Software and machine"),
        Para(
            "Packages installed where this report was written: "
            + " · ".join(f"{name} {code(version)}" for name, version in package_versions().items())
            + "."
        ),
        Table(
            ["machine", ""],
            [[k, v] for k, v in machine().items()],
            align="ll",
            caption=f"The machine that wrote this report ({generated}); training ran on the "
            "device its summary names.",
        ),
    ]


def setup_section(ctx: Context) -> Section:
    section = Section("setup", "Setup")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section.add(recorded_table(ctx), *data_files(ctx), *software(generated))
    return section
