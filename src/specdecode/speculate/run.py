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
from specdecode.speculate.predictors import Predictor, fit_tables, load_table, registry
from specdecode.speculate.replay import ReplaySettings, replay
from specdecode.speculate.simulate import Distribution, LatencyModel


def predictor_choices() -> list[str]:
    """Every registered predictor, and ``model`` (the base model, and the adapter when given)."""
    return [*registry.names(), "model"]


def fit(
    train_traces: str | Path | Sequence[TraceRecord], out: str | Path, which: Sequence[str] | None = None
) -> dict[str, Predictor]:
    """Fit every table predictor (or those in ``which``) and save each as ``OUT/NAME.json``."""
    if isinstance(train_traces, (str, Path)):
        traces = read_records(train_traces, TraceRecord)
        if not traces:
            raise InputError("no training traces to fit: the file has no records", train_traces)
    else:
        traces = list(train_traces)
    return fit_tables(traces, out, which)


def expand_names(names: Sequence[str], has_adapter: bool) -> list[str]:
    """``model`` is the base model and, with an adapter, the adapter too; order kept, no repeats."""
    out: list[str] = []
    for name in names:
        expanded = (["base", "lora"] if has_adapter else ["base"]) if name == "model" else [name]
        for n in expanded:
            spec = registry.spec_of(n)
            if spec.needs_adapter and not has_adapter:
                raise InputError(f"--predictor {spec.name} needs --lora_dir")
            if spec.name not in out:
                out.append(spec.name)
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
    """Predictors by name (see :mod:`specdecode.speculate.predictors.registry`): tables from
    ``fitted`` (a directory of ``speculate fit``), model predictors on ``backend``."""
    has_adapter = bool(backend is not None and getattr(backend, "has_adapter", False))
    names = expand_names(names, has_adapter)
    specs = [registry.spec_of(n) for n in names]
    needs_tables = [s.name for s in specs if s.kind == "table"] + [t for s in specs for t in s.uses_tables]
    if needs_tables and fitted is None:
        raise InputError(f"{', '.join(dict.fromkeys(needs_tables))} need --fitted DIR (from `speculate fit`)")
    model_names = [s.name for s in specs if s.kind == "model"]
    if model_names and backend is None:
        raise InputError(f"model predictors ({', '.join(model_names)}) need --base_model")
    loaded: dict[str, Predictor] = {}

    def table(name: str) -> Predictor:
        if name not in loaded:
            loaded[name] = load_table(Path(fitted) / f"{name}.json")  # type: ignore[arg-type]
        return loaded[name]

    context = registry.BuildContext(
        backend,
        has_adapter,
        table if fitted is not None else None,
        registry.ModelSettings(constrained, options, batch_size, max_new_tokens, seed, form, samples),
    )
    out: dict[str, Predictor] = {}
    for spec in specs:
        out[spec.name] = table(spec.name) if spec.kind == "table" else spec.build(context)  # type: ignore[misc]
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

        data = read_yaml_mapping(
            latency_file, "latency file", "actor / tool / speculator", keys=("actor", "tool", "speculator")
        )

    def specs(value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, dict):
            return [str(v) if k == "*" else f"{k}={v}" for k, v in value.items()]
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return [str(value)]

    for key in ("actor", "tool", "speculator"):  # the file's own distributions, named by the file
        for spec in specs(data.get(key)):
            name, eq, dist = spec.partition("=")
            try:
                Distribution.parse(dist if eq and ":" not in name else spec)
            except ValueError as exc:
                raise InputError(f"{key}: {exc}", latency_file) from None
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
    val_traces: str | Path | Sequence[TraceRecord] | None = None,
) -> dict[str, Any]:
    """Replay ``traces`` (the first ``limit``); calibrating predictors fit on ``val_traces``."""
    check_out_dir(out)
    records = read_records(traces, TraceRecord) if isinstance(traces, (str, Path)) else list(traces)
    if limit:
        records = records[:limit]
    if not records:
        raise InputError("no traces to replay")
    val: list[TraceRecord] = []
    if val_traces is not None:
        val = (
            read_records(val_traces, TraceRecord) if isinstance(val_traces, (str, Path)) else list(val_traces)
        )
    return replay(records, registry, predictors, out, settings, val)


__all__ = [
    "adapter_form",
    "build_predictors",
    "check_out_dir",
    "expand_names",
    "fit",
    "latency_settings",
    "predictor_choices",
    "run_replay",
]
