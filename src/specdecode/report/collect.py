"""Find what a run directory holds — training outputs, eval/compare results, speculation replays —
and gather the numbers the report shows. Nothing is computed here that is not computed by
``evaluate.metrics`` or ``speculate``: this module only reads files and calls them.

Every input is optional and every reader is defensive: a file that is missing, torn or of an
unexpected shape is noted in ``RunData.warnings`` and skipped, never a crash.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from specdecode.errors import InputError

SKIP_DIRS = {"figures", ".git", "__pycache__", "node_modules", ".venv"}
PACKAGES = (
    "specdecode",
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "vllm",
    "numpy",
    "matplotlib",
    "typer",
    "pydantic",
)
MAX_DATA_FILES = 40


@dataclass
class Training:
    """One adapter directory written by ``train``."""

    dir: Path
    curves: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    adapter_config: dict[str, Any] | None = None


@dataclass
class Results:
    """One ``X.jsonl`` + ``X.summary.json`` pair: a comparison (base and adapter) or one eval."""

    path: Path  # the summary file
    kind: str  # "compare" | "eval"
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".summary.json")


@dataclass
class Replay:
    """One ``speculate replay`` output directory."""

    dir: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    latency: dict[str, Any] = field(default_factory=dict)

    @property
    def predictors(self) -> list[str]:
        names = self.summary.get("predictors")
        if not isinstance(names, list):
            names = [k for k, v in self.summary.items() if isinstance(v, dict) and "hit_at_1" in v]
        return [n for n in names if isinstance(self.summary.get(n), dict)]


@dataclass
class RunData:
    run_dir: Path
    trainings: list[Training] = field(default_factory=list)
    comparisons: list[Results] = field(default_factory=list)
    evals: list[Results] = field(default_factory=list)
    replays: list[Replay] = field(default_factory=list)
    trace_files: list[Path] = field(default_factory=list)
    data_files: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.trainings or self.comparisons or self.evals or self.replays)


# --------------------------------------------------------------------------- shapes
def _shapes() -> tuple[type, type, type]:
    """Loose pydantic models of what the report reads from a summary (extra fields allowed):
    a summary whose fields have the wrong type is skipped with a warning naming the field."""
    from pydantic import BaseModel, ConfigDict, Field

    class Loose(BaseModel):
        model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    Number = float | None

    class PredictorSummary(Loose):
        steps: int | None = None
        hit_at_1: Number = None
        hit_at_k: Number = None
        name_hit_at_1: Number = None
        speedup: Number = None
        bound: Number = None
        time_saved_seconds: Number = None
        wasted_calls: int | None = None
        rates: dict[str, dict[str, Any]] | None = None
        simulation: dict[str, Any] | None = None
        sweep: list[dict[str, Any]] | None = None
        frontier: list[dict[str, Any]] | None = None

    class ReplaySummary(Loose):
        traces: int | None = None
        steps: int | None = None
        k: int | None = Field(None, ge=1)
        matcher: str | None = None
        threshold: Number = None
        latency_model: dict[str, Any] | None = None
        speculator_latency: dict[str, Any] | None = None
        predictors: list[str]
        paired: dict[str, Any] | None = None

    class ResultsSummary(Loose):
        n: int | None = None
        metrics: dict[str, dict[str, Any]] | None = None
        base: dict[str, Any] | None = None
        lora: dict[str, Any] | None = None
        paired: dict[str, Any] | None = None
        fingerprint: dict[str, Any] | None = None

    return ReplaySummary, PredictorSummary, ResultsSummary


def _shape_problem(summary: dict[str, Any], kind: str) -> str | None:
    """Why ``summary`` (a replay's ``summary.json`` or an eval/compare ``X.summary.json``) has a
    shape the report cannot use, as ``field: what is wrong``; None when it can."""
    from pydantic import ValidationError

    from specdecode.jsonl import describe_validation_error

    replay_model, predictor_model, results_model = _shapes()
    try:
        if kind == "replay":
            replay_model.model_validate(summary)
            for name in summary["predictors"]:
                if isinstance(summary.get(name), dict):
                    try:
                        predictor_model.model_validate(summary[name])
                    except ValidationError as exc:
                        return f"{name}.{describe_validation_error(exc)}"
        else:
            results_model.model_validate(summary)
            for side in ("base", "lora"):
                if isinstance(summary.get(side), dict):
                    try:
                        results_model.model_validate(summary[side])
                    except ValidationError as exc:
                        return f"{side}.{describe_validation_error(exc)}"
    except ValidationError as exc:
        return describe_validation_error(exc)
    return None


# --------------------------------------------------------------------------- readers
def _load_json(path: Path, warnings: list[str]) -> Any:
    """A JSON file through the bounded reader (:mod:`specdecode.inputs`), or None with a warning."""
    from specdecode.inputs import read_json

    try:
        return read_json(path)
    except InputError as exc:
        warnings.append(f"{exc.message}: unreadable JSON, skipped")
        return None


def _load_jsonl(path: Path, warnings: list[str]) -> list[dict[str, Any]]:
    """The JSON-object lines of a JSONL file, bounded; bad lines are counted in a warning."""
    from specdecode.inputs import iter_lines, loads

    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    bad, first = 0, ""
    try:
        for number, raw in iter_lines(path):
            try:
                row = loads(raw, path, number)
            except InputError as exc:
                bad, first = bad + 1, first or exc.message
                continue
            if isinstance(row, dict):
                rows.append(row)
    except InputError as exc:
        warnings.append(f"{exc.message}: unreadable, skipped")
        return []
    if bad:
        warnings.append(f"{path}: {bad} unreadable line(s) skipped (first: {first})")
    return rows


def _load_yaml(path: Path, warnings: list[str]) -> dict[str, Any] | None:
    from specdecode.inputs import load_yaml

    try:
        data = load_yaml(path)
    except InputError as exc:
        warnings.append(f"{exc.message}: unreadable YAML, skipped")
        return None
    return data if isinstance(data, dict) else None


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


def _first_record(path: Path) -> dict[str, Any] | None:
    from specdecode.inputs import loads, max_line_bytes

    try:
        with path.open("rb") as handle:
            for raw in iter(lambda: handle.readline(max_line_bytes()), b""):
                if raw.strip():
                    row = loads(raw, path)
                    return row if isinstance(row, dict) else None
    except (OSError, InputError):
        return None
    return None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- collection
def collect(run_dir: str | Path) -> RunData:
    """Scan ``run_dir`` recursively for every output the report knows."""
    root = Path(run_dir)
    data = RunData(root)
    files = _walk(root, data.warnings)
    train_dirs = sorted(
        {
            p.parent
            for p in files
            if p.name in ("training_curves.json", "training_summary.json", "train_config.yaml")
        }
    )
    for folder in train_dirs:
        training = Training(folder)
        if (folder / "training_curves.json").is_file():
            curves = _load_json(folder / "training_curves.json", data.warnings)
            training.curves = curves if isinstance(curves, dict) else None
        if (folder / "training_summary.json").is_file():
            summary = _load_json(folder / "training_summary.json", data.warnings)
            training.summary = summary if isinstance(summary, dict) else None
        if (folder / "train_config.yaml").is_file():
            training.config = _load_yaml(folder / "train_config.yaml", data.warnings)
        if (folder / "adapter_config.json").is_file():
            adapter = _load_json(folder / "adapter_config.json", data.warnings)
            training.adapter_config = adapter if isinstance(adapter, dict) else None
        data.trainings.append(training)

    for path in files:
        if path.name.endswith(".summary.json"):
            summary = _load_json(path, data.warnings)
            if not isinstance(summary, dict):
                continue
            problem = _shape_problem(summary, "results")
            if problem is not None:
                data.warnings.append(f"{path}: {problem}; skipped")
                continue
            rows_path = path.with_name(path.name.removesuffix(".summary.json") + ".jsonl")
            rows = _load_jsonl(rows_path, data.warnings)
            if isinstance(summary.get("base"), dict) and isinstance(summary.get("lora"), dict):
                data.comparisons.append(Results(path, "compare", summary, rows))
            elif isinstance(summary.get("metrics"), dict):
                data.evals.append(Results(path, "eval", summary, rows))
        elif path.name == "summary.json":
            summary = _load_json(path, data.warnings)
            if not isinstance(summary, dict) or "predictors" not in summary:
                continue
            problem = _shape_problem(summary, "replay")
            if problem is not None:
                data.warnings.append(f"{path}: {problem}; skipped")
                continue
            latency = (
                _load_json(path.with_name("latency.json"), [])
                if path.with_name("latency.json").is_file()
                else {}
            )
            replay = Replay(
                path.parent,
                summary,
                _load_jsonl(path.with_name("steps.jsonl"), data.warnings),
                latency if isinstance(latency, dict) else {},
            )
            data.replays.append(replay)
        elif path.suffix == ".jsonl":
            first = _first_record(path)
            if first and isinstance(first.get("trace"), list) and "id" in first:
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


def _data_files(data: RunData) -> list[dict[str, Any]]:
    """Training/validation files named by the training configs and the trace files found in the
    run directory, with their SHA-256 (first ``MAX_DATA_FILES``)."""
    seen: dict[Path, str] = {}
    for training in data.trainings:
        recorded: list[tuple[str, str]] = []
        for key in ("train_file", "val_file"):
            value = (training.config or {}).get(key)
            if isinstance(value, str) and value:
                recorded.append((value, key.removesuffix("_file")))
        for item in (training.summary or {}).get("data") or []:
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                recorded.append((item["path"], "training data"))
        for text, role in recorded:
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
            out.append(
                {"path": str(shown), "role": role, "bytes": path.stat().st_size, "sha256": sha256(path)}
            )
        except OSError:
            continue
    return out


# --------------------------------------------------------------------------- setup
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine() -> dict[str, str]:
    """The machine the report is written on: CPU model, cores, memory, GPUs (nvidia-smi)."""
    info = {"os": f"{platform.system()} {platform.release()}", "cores": str(os.cpu_count() or "?")}
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if match:
            cpu = match.group(1).strip()
    except OSError:
        pass
    info["cpu"] = cpu
    try:
        text = Path("/proc/meminfo").read_text(encoding="utf-8", errors="replace")
        match = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, re.M)
        if match:
            info["memory"] = f"{int(match.group(1)) / 1024**2:.1f} GiB"
    except OSError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout.strip()
            if out:
                info["gpu"] = "; ".join(line.strip() for line in out.splitlines())
        except (OSError, subprocess.SubprocessError):
            pass
    info.setdefault("gpu", "none found")
    return info


def setup(data: RunData) -> dict[str, Any]:
    """Models, adapters, registry, seeds and settings as recorded by the runs themselves."""
    models: dict[str, str] = {}
    adapters: dict[str, str] = {}
    registries: dict[str, str] = {}
    seeds: dict[str, str] = {}
    for training in data.trainings:
        where = _rel(training.dir, data.run_dir)
        config = training.config or {}
        if config.get("model_name"):
            models[str(config["model_name"])] = f"trained in {where}"
        lora = training.adapter_config or {}
        parts = [
            f"{k}={config.get(k)}" for k in ("lora_r", "lora_alpha", "form") if config.get(k) is not None
        ]
        if lora.get("target_modules"):
            targets = lora["target_modules"]
            parts.append(
                "targets " + ", ".join(sorted(targets)) if isinstance(targets, list) else str(targets)
            )
        adapters[where] = " · ".join(parts) or "adapter"
        if config.get("registry"):
            registries[str(config["registry"])] = f"training ({where})"
        if config.get("seed") is not None:
            seeds[f"training ({where})"] = str(config["seed"])
    for result in [*data.comparisons, *data.evals]:
        fp = result.summary.get("fingerprint") or {}
        where = _rel(result.path, data.run_dir)
        if isinstance(fp, dict):
            if fp.get("base_model"):
                models.setdefault(str(fp["base_model"]), f"evaluated in {where}")
            if fp.get("adapter"):
                adapters.setdefault(str(fp["adapter"]), f"evaluated in {where}")
            if fp.get("registry"):
                registries.setdefault(f"sha256:{fp['registry']}", f"evaluation ({where})")
            if fp.get("seed") is not None:
                seeds[f"evaluation ({where})"] = str(fp["seed"])
    for replay in data.replays:
        model = replay.summary.get("latency_model") or {}
        if isinstance(model, dict) and model.get("seed") is not None:
            seeds[f"latency draws ({_rel(replay.dir, data.run_dir)})"] = str(model["seed"])
    return {
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "models": models,
        "adapters": adapters,
        "registries": registries,
        "seeds": seeds,
        "packages": package_versions(),
        "machine": machine(),
    }


def _rel(path: Path, root: Path) -> str:
    try:
        text = str(path.relative_to(root))
    except ValueError:
        text = str(path)
    return "." if text in ("", ".") else text


# --------------------------------------------------------------------------- speculation helpers
def best_predictor(replay: Replay) -> str | None:
    """The predictor with the highest name+arguments hit@1 (ties: the later, usually learned, one)."""
    best, best_rate = None, -1.0
    for name in replay.predictors:
        value = replay.summary[name].get("hit_at_1")
        if isinstance(value, (int, float)) and value >= best_rate:
            best, best_rate = name, float(value)
    return best


def fastest_predictor(replay: Replay) -> str | None:
    """The predictor with the highest simulated speed-up (ties: the better hit@1)."""
    scored = [
        (float(replay.summary[n]["speedup"]), float(replay.summary[n].get("hit_at_1") or 0), n)
        for n in replay.predictors
        if isinstance(replay.summary[n].get("speedup"), (int, float))
    ]
    return max(scored)[2] if scored else None


def _registry_for(data: RunData, replay: Replay, tools: set[str]):
    from specdecode.registry import load_registry

    candidates: list[str | Path] = []
    for training in data.trainings:
        if (training.dir / "tools.yaml").is_file():
            candidates.append(training.dir / "tools.yaml")
        if (training.config or {}).get("registry"):
            candidates.append(str(training.config["registry"]))
    candidates += ["tools4", "tools17"]
    fallback = None
    for candidate in candidates:
        try:
            registry = load_registry(candidate)
        except Exception:
            continue
        fallback = fallback or registry
        if tools <= set(registry.names):
            return registry
    return fallback


def _traces_for(data: RunData, replay: Replay, ids: set[str]):
    """Trace records covering ``ids``: from a trace file in the run directory when one matches
    (so measured ``actor_seconds``/``tool_seconds`` are used as the replay did), else rebuilt
    from the replay rows' gold calls."""
    from specdecode.records import TraceRecord

    for path in data.trace_files:
        records = {}
        for row in _load_jsonl(path, []):
            if row.get("id") in ids:
                try:
                    records[row["id"]] = TraceRecord.model_validate(row)
                except Exception:
                    continue
        if set(records) >= ids:
            return records
    data.warnings.append(
        f"timeline: no trace file in the run directory holds the replayed traces; latencies are "
        f"drawn from {replay.dir}'s latency model (measured actor/tool seconds are not known)"
    )
    steps: dict[str, dict[int, dict[str, Any]]] = {}
    for row in replay.rows:
        if row.get("id") in ids and isinstance(row.get("gold_call"), dict):
            steps.setdefault(row["id"], {})[int(row["step"])] = row["gold_call"]
    out = {}
    for trace_id, by_step in steps.items():
        trace = [{"thought": "", "action": by_step[i]} for i in range(max(by_step) + 1) if i in by_step]
        if len(trace) == max(by_step) + 1:
            out[trace_id] = TraceRecord.model_validate(
                {"id": trace_id, "question": "(replayed)", "trace": trace}
            )
    return out


def timeline(
    data: RunData, replay: Replay, predictor: str, trace_id: str | None = None
) -> dict[str, Any] | None:
    """One trace's steps with and without speculation, simulated by ``speculate.simulate`` with
    the replay's latency model, keyed draws and speculator latency (so it matches the replay when
    the trace file is in the run directory; rebuilt traces lack measured seconds and read-only
    marks, and a warning says so). The report only sums what the simulator returns."""
    from specdecode.speculate.replay import ReplaySettings, simulation_steps
    from specdecode.speculate.simulate import Distribution, LatencyModel, simulate_step

    rows = [r for r in replay.rows if r.get("predictor") == predictor]
    if not rows:
        return None
    try:
        described = replay.summary.get("latency_model") or {}
        model = LatencyModel(
            actor=Distribution.parse(described.get("actor", "fixed:2")),
            tool=Distribution.parse(described.get("tool", "fixed:1")),
            per_tool=tuple((n, Distribution.parse(d)) for n, d in (described.get("per_tool") or {}).items()),
            prefer_measured=bool(described.get("prefer_measured", True)),
            seed=int(described.get("seed", 0)),
        )
        settings = ReplaySettings(
            k=int(replay.summary.get("k") or 3),
            matcher=str(replay.summary.get("matcher") or "normalised"),
            threshold=float(replay.summary.get("threshold") or 0.8),
            latency=model,
        )
        given = replay.summary.get("speculator_latency") or {}
        spec_text = given.get(predictor) or given.get("*")
        measured = (replay.latency.get(predictor) or {}).get("cached_prefix")
        if spec_text:
            speculator = Distribution.parse(spec_text)
        elif measured:
            speculator = Distribution("empirical", tuple(float(x) for x in measured))
        else:
            speculator = None
        by_trace: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_trace.setdefault(str(row["id"]), []).append(row)
        ids = set(by_trace) if trace_id is None else {trace_id}
        traces = _traces_for(data, replay, ids)
        tools = {str(r.get("gold_tool")) for r in rows} | {
            c.get("tool_name") for r in rows for c in r.get("pred_calls") or [] if isinstance(c, dict)
        }
        registry = _registry_for(data, replay, {t for t in tools if t})
        if registry is None:
            return None
        simulated: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        for tid in ids:
            chosen = sorted(by_trace.get(tid, []), key=lambda r: int(r["step"]))
            if tid in traces and chosen:
                steps = simulation_steps(chosen, traces, registry, settings, speculator, launch=1)
                simulated[tid] = list(zip(chosen, steps))
        if not simulated:
            return None

        # the trace whose picture shows most: time saved, hits and misses both, a few steps
        def interest(tid: str) -> tuple[float, int, int]:
            outcomes = [simulate_step(step) for _, step in simulated[tid]]
            used = sum(o.hit_used for o in outcomes)
            saved = sum(o.saved for o in outcomes)
            return (round(saved, 3), int(0 < used < len(outcomes)), min(len(outcomes), 6))

        trace_id = trace_id if trace_id in simulated else max(sorted(simulated), key=interest)
        pairs = simulated[trace_id]
    except Exception as exc:
        data.warnings.append(f"timeline of {predictor}: skipped ({type(exc).__name__}: {exc})")
        return None
    out_steps = []
    for row, step in pairs:
        outcome = simulate_step(step)
        out_steps.append(
            {
                "step": int(row["step"]),
                "tool": str(row.get("gold_tool")),
                "actor": step.actor,
                "tool_seconds": step.tool,
                "speculator": step.speculator,
                "hit": outcome.hit_used,
                "launched": step.launched if outcome.in_time else 0,
                "in_time": outcome.in_time,
                "baseline": outcome.baseline,
                "speculative": outcome.speculative,
                "saved": outcome.saved,
            }
        )
    return {
        "predictor": predictor,
        "trace_id": trace_id,
        "steps": out_steps,
        "baseline": sum(s["baseline"] for s in out_steps),
        "speculative": sum(s["speculative"] for s in out_steps),
    }


def step_breakdown(rows: list[dict[str, Any]], prefix: str, metric: str) -> dict[str, dict[str, Any]]:
    """A compare/eval metric per step index (``evaluate.metrics.breakdown``)."""
    from specdecode.evaluate.metrics import breakdown

    usable = [r for r in rows if "step" in r and isinstance(r.get(f"{prefix}metrics"), dict)]
    if not usable:
        return {}
    out = breakdown(usable, lambda r: r["step"], lambda r: r[f"{prefix}metrics"].get(metric))
    return dict(sorted(out.items(), key=lambda kv: _num(kv[0])))


def _num(text: str) -> tuple[int, Any]:
    try:
        return (0, int(text))
    except ValueError:
        return (1, text)


def failure_counts(rows: list[dict[str, Any]], prefix: str) -> dict[str, int] | None:
    from specdecode.evaluate.metrics import failure_modes

    try:
        return failure_modes(rows, prefix) if rows else None
    except Exception:
        return None
