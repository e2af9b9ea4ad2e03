"""The predictor registry: one place that knows every predictor by name.

A predictor is one module that calls :func:`register` with a :class:`PredictorSpec`: its name,
a line of help, its colour in the report, and how to make it — a *table* is fitted on training
traces (``speculate fit`` writes ``NAME.json``) and loaded from that file; a *model* predictor is
built on a generation backend with its settings (:class:`ModelSettings`) and the fitted tables it
uses (``uses_tables``), and may need the adapter (``needs_adapter``). The CLI's choices and help,
``speculate fit``, replay, the demo and the report's palette all read this registry, so a new
predictor is one new module (plus its test): nothing else changes (docs/design.md shows one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from specdecode.prompts import PromptOptions
from specdecode.records import TraceRecord

PredictorKind = Literal["table", "model"]


@dataclass(frozen=True)
class ModelSettings:
    """The settings model predictors are built with (``speculate replay``'s generation flags)."""

    constrained: bool = False
    options: PromptOptions = field(default_factory=PromptOptions)
    batch_size: int = 16
    max_new_tokens: int = 96
    seed: int = 0
    form: str = "steps"  # the adapter's training form (the base model always reads steps)
    samples: int | None = None  # sampled answers per step for top-k [default: 2 x (k - 1)]


@dataclass
class BuildContext:
    """What a model predictor may be built from: the backend, the fitted tables (loaded lazily)
    and the generation settings of ``speculate replay``."""

    backend: Any = None
    has_adapter: bool = False
    tables: Callable[[str], Any] | None = None  # name → the fitted table predictor
    settings: ModelSettings = field(default_factory=ModelSettings)

    def table(self, name: str) -> Any:
        if self.tables is None:
            from specdecode.errors import InputError

            raise InputError(f"this predictor uses the fitted {name!r} table: give --fitted DIR")
        return self.tables(name)


@dataclass(frozen=True)
class PredictorSpec:
    """How to make one predictor (see the module docstring)."""

    name: str
    help: str
    colour: str
    kind: PredictorKind
    fit: Callable[[Sequence[TraceRecord]], Any] | None = None  # table: traces → predictor
    load: Callable[[dict[str, Any]], Any] | None = None  # table: saved JSON → predictor
    build: Callable[[BuildContext], Any] | None = None  # model: context → predictor
    needs_adapter: bool = False
    uses_tables: tuple[str, ...] = ()  # fitted tables a model predictor reads
    in_demo: bool = True  # replayed by `make demo` and the real-data benchmark
    aliases: tuple[str, ...] = ()  # older names that still select it


PREDICTORS: dict[str, PredictorSpec] = {}


def register(spec: PredictorSpec) -> PredictorSpec:
    """Add (or replace) a predictor; returns the spec."""
    PREDICTORS[spec.name] = spec
    return spec


def spec_of(name: str) -> PredictorSpec:
    from specdecode.errors import InputError

    _load_builtin()
    for spec in PREDICTORS.values():
        if name == spec.name or name in spec.aliases:
            return spec
    raise InputError(f"unknown predictor {name!r}: choose {', '.join(names())}")


def names(kind: PredictorKind | None = None) -> list[str]:
    """Registered predictor names (of one kind): tables first, each kind in registration order."""
    _load_builtin()
    ordered = sorted(PREDICTORS.values(), key=lambda s: s.kind != "table")
    return [s.name for s in ordered if kind is None or s.kind == kind]


def colour(name: str, index: int = 0) -> str:
    _load_builtin()
    spec = PREDICTORS.get(name)
    extra = ("#17becf", "#bcbd22", "#7f7f7f", "#e377c2", "#8c564b")
    return spec.colour if spec else extra[index % len(extra)]


def _load_builtin() -> None:
    """Import every module of the predictors package: each registers its predictors on import,
    so a new module there is found without being named anywhere."""
    import importlib
    import pkgutil

    import specdecode.speculate.predictors as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
