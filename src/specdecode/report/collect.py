"""Find what a run directory holds — training outputs, eval/compare results, speculation replays —
and read it through the models of :mod:`specdecode.results`. This module only reads files:
every number the report shows was computed by ``evaluate`` or ``speculate`` when the run wrote
it (replay writes each trace's simulated steps, ``timeline.jsonl``, for the timeline figure).

Every input is optional: a file that is missing, torn or of an unexpected shape is noted in
``RunData.warnings`` and skipped, never a crash.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from specdecode.errors import InputError
from specdecode.results import (
    UNREADABLE,
    AdapterConfig,
    CompareRow,
    CompareSummary,
    EvalRow,
    EvalSummary,
    LatencyFile,
    ReplayRow,
    ReplaySummary,
    ResultModel,
    TimelineRow,
    TrainConfigRecord,
    TrainingCurves,
    TrainingSummary,
    read_result,
    read_rows,
)

SKIP_DIRS = {"figures", ".git", "__pycache__", "node_modules", ".venv"}
TRAINING_FILES = ("training_curves.json", "training_summary.json", "train_config.yaml")
MAX_DATA_FILES = 40
M = TypeVar("M", bound=ResultModel)
S = TypeVar("S", bound=ResultModel)
R = TypeVar("R", bound=ResultModel)


@dataclass
class Training:
    """One adapter directory written by ``train``."""

    dir: Path
    curves: TrainingCurves | None = None
    summary: TrainingSummary | None = None
    config: TrainConfigRecord | None = None
    adapter_config: AdapterConfig | None = None


@dataclass
class ResultFiles(Generic[S, R]):
    """One ``X.jsonl`` + ``X.summary.json`` pair: the summary and its rows."""

    path: Path  # the summary file
    summary: S
    rows: list[R] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".summary.json")


Results = ResultFiles[CompareSummary, CompareRow]  # a comparison: base and adapter
Evaluation = ResultFiles[EvalSummary, EvalRow]  # one model


@dataclass
class Replay:
    """One ``speculate replay`` output directory."""

    dir: Path
    summary: ReplaySummary
    rows: list[ReplayRow] = field(default_factory=list)
    latency: LatencyFile = field(default_factory=LatencyFile)
    timeline: list[TimelineRow] = field(default_factory=list)

    @property
    def predictors(self) -> list[str]:
        return list(self.summary.results)


@dataclass
class DataFile:
    path: str
    role: str
    bytes: int
    sha256: str


@dataclass
class RunData:
    run_dir: Path
    trainings: list[Training] = field(default_factory=list)
    comparisons: list[Results] = field(default_factory=list)
    evals: list[Evaluation] = field(default_factory=list)
    replays: list[Replay] = field(default_factory=list)
    trace_files: list[Path] = field(default_factory=list)
    data_files: list[DataFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.trainings or self.comparisons or self.evals or self.replays)

    # ---------------------------------------------------------------- readers
    def read(self, path: Path, model: type[M]) -> M | None:
        """``path`` through ``model``, or None and a warning."""
        from pydantic import ValidationError

        from specdecode.jsonl import describe_validation_error

        try:
            return read_result(path, model)
        except ValidationError as exc:  # a summary of the wrong shape: name the field
            self.warnings.append(f"{path}: {describe_validation_error(exc)}; skipped")
        except InputError as exc:
            self.warnings.append(f"{exc.message}: unreadable JSON, skipped")
        except UNREADABLE as exc:
            self.warnings.append(f"{path}: unreadable JSON ({type(exc).__name__}), skipped")
        return None

    def rows(self, path: Path, model: type[M]) -> list[M]:
        """The readable rows of a JSONL file (none when it is missing), unreadable lines counted."""
        if not path.is_file():
            return []
        try:
            rows, bad = read_rows(path, model)
        except OSError:
            self.warnings.append(f"{path}: unreadable, skipped")
            return []
        if bad:
            self.warnings.append(f"{path}: {bad} unreadable line(s) skipped")
        return rows


def _load_yaml(path: Path, run: RunData) -> TrainConfigRecord | None:
    from specdecode.inputs import load_yaml

    try:
        data = load_yaml(path)
        return TrainConfigRecord.model_validate(data) if isinstance(data, dict) else None
    except UNREADABLE:
        run.warnings.append(f"{path}: unreadable YAML, skipped")
        return None


def _walk(root: Path, warnings: list[str] | None = None) -> list[Path]:
    """Every regular file under ``root``, skipping figures, checkpoints and hidden tool folders;
    anything else where a file would be (a FIFO, a device, a broken link or a link loop) is
    skipped with a warning: it is never opened, so it cannot hang the report."""
    from specdecode.inputs import is_regular_file

    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("checkpoint-"))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if is_regular_file(path):
                out.append(path)
            elif warnings is not None:
                warnings.append(f"{path}: not a regular file (a FIFO, device or broken link), skipped")
    return out


def _is_trace_file(path: Path) -> bool:
    """A JSONL file whose first record looks like a trace (``id`` and a ``trace`` list)."""
    from specdecode.inputs import loads, max_line_bytes

    record = None
    try:
        with path.open("rb") as handle:
            for raw in iter(lambda: handle.readline(max_line_bytes()), b""):
                if raw.strip():
                    record = loads(raw, path)
                    break
    except (OSError, InputError):
        return False
    match record:
        case {"id": _, "trace": list()}:
            return True
    return False


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- collection
def _training(folder: Path, run: RunData) -> Training:
    def optional(name: str, model: type[M]) -> M | None:
        return run.read(folder / name, model) if (folder / name).is_file() else None

    config = (
        _load_yaml(folder / "train_config.yaml", run) if (folder / "train_config.yaml").is_file() else None
    )
    return Training(
        folder,
        curves=optional("training_curves.json", TrainingCurves),
        summary=optional("training_summary.json", TrainingSummary),
        config=config,
        adapter_config=optional("adapter_config.json", AdapterConfig),
    )


def _results(path: Path, run: RunData) -> None:
    """A ``X.summary.json``: a comparison (``base`` and ``lora``), an evaluation (``metrics``), or
    another command's summary (skipped)."""
    from specdecode.inputs import read_json

    try:
        raw = read_json(path)
    except InputError as exc:
        run.warnings.append(f"{exc.message}: unreadable JSON, skipped")
        return
    rows_path = path.with_name(path.name.removesuffix(".summary.json") + ".jsonl")
    match raw:
        case {"base": dict(), "lora": dict()}:
            compared = run.read(path, CompareSummary)
            if compared is not None:
                run.comparisons.append(Results(path, compared, run.rows(rows_path, CompareRow)))
        case {"base": _, "lora": _} | {"metrics": _}:
            if "metrics" in raw and not {"base", "lora"} <= raw.keys():
                evaluated = run.read(path, EvalSummary)
                if evaluated is not None:
                    run.evals.append(Evaluation(path, evaluated, run.rows(rows_path, EvalRow)))
            else:  # a comparison whose sides are of the wrong shape: the validation names the field
                compared = run.read(path, CompareSummary)
                if compared is not None:
                    run.comparisons.append(Results(path, compared, run.rows(rows_path, CompareRow)))


def _replay(path: Path, run: RunData) -> None:
    """A ``summary.json`` of ``speculate replay`` (one that lists ``predictors``)."""
    from specdecode.inputs import read_json

    try:
        raw = read_json(path)
    except InputError as exc:
        run.warnings.append(f"{exc.message}: unreadable JSON, skipped")
        return
    if not isinstance(raw, dict) or "predictors" not in raw:
        return
    summary = run.read(path, ReplaySummary)
    if summary is None:
        return
    latency = path.with_name("latency.json")
    run.replays.append(
        Replay(
            path.parent,
            summary,
            run.rows(path.with_name("steps.jsonl"), ReplayRow),
            (run.read(latency, LatencyFile) if latency.is_file() else None) or LatencyFile(),
            run.rows(path.with_name("timeline.jsonl"), TimelineRow),
        )
    )


def collect(run_dir: str | Path) -> RunData:
    """Scan ``run_dir`` recursively for every output the report knows."""
    root = Path(run_dir)
    data = RunData(root)
    files = _walk(root, data.warnings)
    for folder in sorted({p.parent for p in files if p.name in TRAINING_FILES}):
        data.trainings.append(_training(folder, data))
    for path in files:
        if path.name.endswith(".summary.json"):
            _results(path, data)
        elif path.name == "summary.json":
            _replay(path, data)
        elif path.suffix == ".jsonl" and _is_trace_file(path):
            data.trace_files.append(path)
    data.data_files = _data_files(data)
    return data


def _resolve(path_text: str, root: Path) -> Path | None:
    """A path recorded in a config (relative to where the command ran) found from here."""
    path = Path(path_text)
    candidates = (
        [path] if path.is_absolute() else [path, root / path, *(p / path for p in root.resolve().parents)]
    )
    candidates.append(root / path.name)
    return next((c for c in candidates if c.is_file()), None)


def _recorded_data(training: Training) -> list[tuple[str, str]]:
    """(path, role) of the data files a training run names: its config's, its summary's."""
    config = training.config or TrainConfigRecord()
    recorded = [
        (text, role) for text, role in ((config.train_file, "train"), (config.val_file, "val")) if text
    ]
    if training.summary is not None:
        recorded += [(d.path, "training data") for d in training.summary.data if d.path]
    return recorded  # type: ignore[return-value]


def _data_files(data: RunData) -> list[DataFile]:
    """Training/validation files named by the training configs and the trace files found in the
    run directory, with their SHA-256 (first ``MAX_DATA_FILES``)."""
    seen: dict[Path, str] = {}
    for training in data.trainings:
        for text, role in _recorded_data(training):
            found = _resolve(text, data.run_dir)
            if found is not None:
                seen.setdefault(found.resolve(), role)
    for path in data.trace_files:
        seen.setdefault(path.resolve(), "traces")
    out = []
    for path, role in list(seen.items())[:MAX_DATA_FILES]:
        try:
            shown = path.relative_to(data.run_dir.resolve())
        except ValueError:
            shown = Path(os.path.relpath(path))
        try:
            out.append(DataFile(str(shown), role, path.stat().st_size, sha256(path)))
        except OSError:
            continue
    return out
