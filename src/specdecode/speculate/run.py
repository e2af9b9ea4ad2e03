"""What ``speculate fit`` and ``speculate replay`` do, callable from Python (the CLI and the demo
are thin faces over these)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from specdecode.errors import InputError
from specdecode.jsonl import read_records
from specdecode.models import adapter_form
from specdecode.prompts import PromptOptions
from specdecode.records import TraceRecord
from specdecode.registry import Registry
from specdecode.speculate.predictors import (
    HybridPredictor,
    ModelPredictor,
    PatternPredictor,
    Predictor,
    fit_tables,
    load_table,
)
from specdecode.speculate.replay import ReplaySettings, replay
from specdecode.speculate.simulate import Distribution, LatencyModel

PREDICTOR_CHOICES = ("frequency", "pattern", "model", "base", "lora", "hybrid")


def fit(train_traces: str | Path | Sequence[TraceRecord], out: str | Path) -> dict[str, Predictor]:
    """Fit the frequency and pattern tables and save them as ``OUT/frequency.json`` and
    ``OUT/pattern.json``."""
    if isinstance(train_traces, (str, Path)):
        traces = read_records(train_traces, TraceRecord)
        if not traces:
            raise InputError("no training traces to fit: the file has no records", train_traces)
    else:
        traces = list(train_traces)
    return fit_tables(traces, out)


def expand_names(names: Sequence[str], has_adapter: bool) -> list[str]:
    """``model`` is the base model and, with an adapter, the adapter too; order kept, no repeats."""
    out: list[str] = []
    for name in names:
        if name not in PREDICTOR_CHOICES:
            raise InputError(f"unknown predictor {name!r}: choose {', '.join(PREDICTOR_CHOICES)}")
        for n in (["base", "lora"] if has_adapter else ["base"]) if name == "model" else [name]:
            if n == "lora" and not has_adapter:
                raise InputError("--predictor lora needs --lora_dir")
            if n not in out:
                out.append(n)
    return out


def build_predictors(
    names: Sequence[str],
    fitted: str | Path | None = None,
    backend: Any = None,
    *,
    constrained: bool = False,
    options: PromptOptions = PromptOptions(),
    batch_size: int = 16,
    max_new_tokens: int = 96,
    seed: int = 0,
    form: str = "steps",
    samples: int | None = None,
) -> dict[str, Predictor]:
    """Predictors by name: tables from ``fitted`` (a directory of ``speculate fit``), model
    predictors on ``backend`` (``lora``: the adapter; ``hybrid``: the pattern table's tools with
    the adapter's arguments when there is an adapter, else the base model's)."""
    has_adapter = bool(backend is not None and getattr(backend, "has_adapter", False))
    names = expand_names(names, has_adapter)
    tables: dict[str, Predictor] = {}
    if any(n in ("frequency", "pattern", "hybrid") for n in names):
        if fitted is None:
            raise InputError("frequency, pattern and hybrid need --fitted DIR (from `speculate fit`)")
        for table in ("frequency", "pattern"):
            path = Path(fitted) / f"{table}.json"
            if table in names or (table == "pattern" and "hybrid" in names):
                tables[table] = load_table(path)
    if any(n in ("base", "lora", "hybrid") for n in names) and backend is None:
        raise InputError("model predictors (model, base, lora, hybrid) need --base_model")

    def model(adapter: bool, name: str) -> ModelPredictor:
        return ModelPredictor(
            backend,
            adapter=adapter,
            name=name,
            constrained=constrained,
            options=options,
            form=form if adapter else "steps",
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            seed=seed,
            samples=samples,
        )

    out: dict[str, Predictor] = {}
    for name in names:
        if name in ("frequency", "pattern"):
            out[name] = tables[name]
        elif name == "base":
            out[name] = model(False, "base")
        elif name == "lora":
            out[name] = model(True, "lora")
        elif name == "hybrid":
            pattern = tables["pattern"]
            assert isinstance(pattern, PatternPredictor)
            writer = model(has_adapter, "lora" if has_adapter else "base")
            writer.constrained = constrained and writer.constrained
            out[name] = HybridPredictor(pattern, writer)
    return out


def latency_settings(
    actor: str | None,
    tool: Sequence[str] | None,
    speculator: Sequence[str] | None,
    latency_file: str | Path | None = None,
    prefer_measured: bool = True,
    seed: int = 0,
) -> tuple[LatencyModel, dict[str, Distribution]]:
    """The latency model from flags and/or a YAML file (``actor: DIST``, ``tool: DIST | [DIST,
    NAME=DIST, ...] | {NAME: DIST, '*': DIST}``, ``speculator`` alike); flags win."""
    data: dict[str, Any] = {}
    if latency_file:
        from specdecode.settings import read_yaml_mapping

        data = read_yaml_mapping(latency_file, "latency file", "actor / tool / speculator")

    def specs(value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, dict):
            return [str(v) if k == "*" else f"{k}={v}" for k, v in value.items()]
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return [str(value)]

    try:
        model = LatencyModel.from_specs(
            actor or (str(data["actor"]) if data.get("actor") is not None else None),
            [*specs(data.get("tool")), *(tool or [])],
            prefer_measured=prefer_measured,
            seed=seed,
        )
        given: dict[str, Distribution] = {}
        for spec in [*specs(data.get("speculator")), *(speculator or [])]:
            name, eq, dist = spec.partition("=")
            if eq and ":" not in name:
                given[name.strip()] = Distribution.parse(dist)
            else:
                given["*"] = Distribution.parse(spec)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return model, given


def check_out_dir(out: str | Path) -> None:
    """``--out`` must be a folder or creatable as one: a file in the way stops the command."""
    path = Path(out)
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                why = "is a file, expected a folder for the outputs (--out)"
                raise InputError(
                    why if existing == path else f"is a file, so --out {path} cannot be created", existing
                )
            return


def run_replay(
    traces: str | Path | Sequence[TraceRecord],
    registry: Registry,
    predictors: dict[str, Predictor],
    out: str | Path,
    settings: ReplaySettings,
    limit: int | None = None,
) -> dict[str, Any]:
    check_out_dir(out)
    records = read_records(traces, TraceRecord) if isinstance(traces, (str, Path)) else list(traces)
    if limit:
        records = records[:limit]
    if not records:
        raise InputError("no traces to replay")
    return replay(records, registry, predictors, out, settings)


__all__ = [
    "PREDICTOR_CHOICES",
    "adapter_form",
    "build_predictors",
    "check_out_dir",
    "expand_names",
    "fit",
    "latency_settings",
    "run_replay",
]
