"""``speculate replay``: walk every gold trace step by step and ask each predictor for the next
call; score hits, compare predictors on the same steps, and simulate the wall-clock effect.

Outputs (under ``DIR``): ``steps.jsonl`` (one row per step and predictor, appended as they are
computed, rewritten in order at the end), ``latency.json`` (batch-1 next-call latencies of the
model predictors, with and without the cached prefix), ``summary.json`` (atomic, with the
replay's settings) and ``timeline.jsonl`` (each trace's simulated steps per predictor, what the
report draws). Every file's shape is a model of :mod:`specdecode.results`. A rerun keeps
the rows of every predictor whose settings fingerprint is unchanged and computes the rest;
latency settings only change the simulation, which is always recomputed from the rows.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from specdecode.evaluate.metrics import paired
from specdecode.jsonl import append_jsonl, write_json, write_jsonl
from specdecode.records import ToolCall, TraceRecord
from specdecode.registry import Registry
from specdecode.results import ReplayRow, ReplaySummary, as_row
from specdecode.speculate.match import exact, make_matcher, same_call, same_name
from specdecode.speculate.outcomes import (
    expected_hidden,
    is_read_only,
    latency_stats,
    percentile,
    simulation_steps,
    summarise_predictor,
)
from specdecode.speculate.predictors.base import Predictor, StepContext, contexts_of
from specdecode.speculate.schema import CallGuard
from specdecode.speculate.simulate import Distribution, LatencyModel

__all__ = [
    "ReplaySettings",
    "calibrate",
    "expected_hidden",
    "guarded",
    "is_read_only",
    "latency_stats",
    "percentile",
    "replay",
    "score_row",
    "simulation_steps",
    "summarise_predictor",
    "traces_fingerprint",
]
console = Console(stderr=True)


@dataclass
class ReplaySettings:
    """What a replay measures and how it simulates time."""

    k: int = 3
    matcher: str = "normalised"
    threshold: float = 0.8
    latency: LatencyModel = field(default_factory=LatencyModel)
    speculator_latency: dict[str, Distribution] = field(default_factory=dict)  # name or "*" → given
    latency_samples: int = 8  # batch-1 measurements per model predictor (0: none)
    cost_per_call: float = 1.0
    chunk: int = 32
    costs: dict[str, float] = field(default_factory=dict)  # tool → cost of a wasted call (policy)

    def describe(self) -> dict[str, Any]:
        """What ``summary.json`` records as the replay's settings (``results.ReplaySettingsRecord``)."""
        return {
            "k": self.k,
            "matcher": self.matcher,
            "threshold": self.threshold,
            "latency": self.latency.describe(),
            "speculator_latency": {n: str(d) for n, d in self.speculator_latency.items()},
            "latency_samples": self.latency_samples,
            "cost_per_call": self.cost_per_call,
            "costs": dict(self.costs),
        }


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def traces_fingerprint(traces: Sequence[TraceRecord]) -> str:
    return _fingerprint([[t.id, t.question, [s.action.model_dump() for s in t.trace]] for t in traces])


def _calls(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    return [{"tool_name": c.tool_name, "arguments": c.arguments} for c in calls]


def score_row(
    name: str,
    context: StepContext,
    gold: ToolCall,
    pred: Sequence[ToolCall],
    latency: float,
    settings,
    probs: Sequence[float] = (),
    invalid: int = 0,
) -> dict[str, Any]:
    """One step's outcome for one predictor (``pred``: its schema-valid candidates; ``invalid``:
    how many it proposed that broke their tool's schema and were dropped)."""
    matcher = make_matcher(settings.matcher, settings.threshold)
    top = list(pred[: settings.k])
    first = top[:1]
    rank = next((i + 1 for i, c in enumerate(top) if matcher(c, gold)), None)
    fields = {
        "predictor": name,
        "id": context.id,
        "step": context.step,
        "level": context.level,
        "gold_tool": gold.tool_name,
        "gold_call": {"tool_name": gold.tool_name, "arguments": gold.arguments},
        "pred_calls": _calls(top),
        "pred_probs": [round(float(p), 6) for p in list(probs)[: len(top)]],
        "invalid": invalid,
        "latency": round(latency, 6),
        "hit_at_1": bool(first and matcher(first[0], gold)),
        "hit_at_k": rank is not None,
        "hit_rank": rank,
        "name_hit_at_1": bool(first and same_name(first[0], gold)),
        "name_hit_at_k": any(same_name(c, gold) for c in top),
        "exact_hit_at_1": bool(first and exact(first[0], gold)),
        "normalised_hit_at_1": bool(first and same_call(first[0], gold)),
    }
    return as_row(ReplayRow, fields)


def guarded(pred: Any, guard: CallGuard) -> tuple[list[ToolCall], list[float], int]:
    """A prediction's candidates cast to their tools' schemas: the valid ones (with their
    probabilities, when the predictor gave them) and how many were dropped."""
    calls, probs, invalid = [], [], 0
    given = list(getattr(pred, "probs", []) or [])
    for i, call in enumerate(pred.calls):
        checked = guard.check(call)
        if checked is None:
            invalid += 1
            continue
        calls.append(checked)
        if given:
            probs.append(given[i] if i < len(given) else 0.0)
    return calls, probs, invalid


def _row_key(row: dict[str, Any]) -> tuple[str, str, int]:
    return (row["predictor"], row["id"], int(row["step"]))


def _state(path: Path) -> dict[str, Any]:
    """A state file of an earlier run in the output folder (calibration, fingerprints, latency):
    its object, or empty when it is missing, torn or not ours (it is then rewritten)."""
    from specdecode.errors import InputError
    from specdecode.inputs import is_regular_file, read_json

    if not is_regular_file(path):
        return {}
    try:
        data = read_json(path)
    except InputError:
        return {}
    return data if isinstance(data, dict) else {}


def _load_rows(path: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    from specdecode.inputs import is_regular_file

    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    if not is_regular_file(path):
        return rows
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            rows[_row_key(row)] = row
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # a torn last line from a kill (cut even inside a character)
    return rows


def calibrate(
    predictors: dict[str, Predictor],
    traces: Sequence[TraceRecord],
    registry: Registry,
    settings: ReplaySettings,
    path: Path,
) -> dict[str, Any]:
    """Fit every calibrating predictor on ``traces`` (validation steps), reusing a stored fit of
    the same predictor settings and traces; returns name → calibration report."""
    from specdecode.speculate.calibration import FIT_VERSION, Calibration

    stored = _state(path)
    reports: dict[str, Any] = {}
    if not traces:
        return reports
    matcher = make_matcher(settings.matcher, settings.threshold)
    contexts = [c for t in traces for c in contexts_of(t, registry)]
    gold = [t.trace[c.step].action for t in traces for c in contexts_of(t, registry)]
    for name, predictor in predictors.items():
        if not hasattr(predictor, "calibrate"):
            continue
        key = _fingerprint(
            {"predictor": predictor.describe(), "traces": traces_fingerprint(traces), "fit": FIT_VERSION}
        )
        entry = stored.get(name)
        report = entry if isinstance(entry, dict) and entry.get("key") == key else None
        if report is None:
            console.print(f"replay {name}: calibrating on {len(contexts)} validation steps")
            report = {"key": key, **predictor.calibrate(contexts, gold, matcher)}  # type: ignore[attr-defined]
            stored[name] = report
            write_json(path, stored)
        else:
            fields = Calibration.__dataclass_fields__
            predictor.calibration = Calibration(**{k: report[k] for k in fields if k in report})  # type: ignore[attr-defined]
        reports[name] = {k: v for k, v in report.items() if k != "key"}
    return reports


def replay(
    traces: Sequence[TraceRecord],
    registry: Registry,
    predictors: dict[str, Predictor],
    out_dir: str | Path,
    settings: ReplaySettings | None = None,
    calibration_traces: Sequence[TraceRecord] | None = None,
) -> dict[str, Any]:
    """Replay every predictor on every step of ``traces``; write ``steps.jsonl``,
    ``latency.json`` and ``summary.json`` under ``out_dir``; return the summary.

    Predictors that calibrate their probabilities (``verify``) are fitted first on
    ``calibration_traces`` (the validation split: never ``traces``), once per predictor setting
    (kept in ``calibration.json``)."""
    settings = settings or ReplaySettings()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps_path, fp_path, lat_path = out / "steps.jsonl", out / "fingerprint.json", out / "latency.json"
    contexts = [c for t in traces for c in contexts_of(t, registry)]
    guards = {t.id: CallGuard(registry.subset(t.tools)) for t in traces}
    gold = {(c.id, c.step): t.trace[c.step].action for t in traces for c in contexts_of(t, registry)}
    base_fp = {
        "rows": 2,  # rows carry schema-checked candidates, probabilities and invalid counts
        "traces": traces_fingerprint(traces),
        "registry": registry.fingerprint(),
        "k": settings.k,
        "matcher": settings.matcher,
        "threshold": settings.threshold,
    }
    calibrations = calibrate(
        predictors, calibration_traces or [], registry, settings, out / "calibration.json"
    )
    fingerprints = {
        name: _fingerprint({**base_fp, "predictor": p.describe()}) for name, p in predictors.items()
    }
    old = _state(fp_path)
    rows = _load_rows(steps_path)
    stale = {name for name in predictors if old.get(name) not in (None, fingerprints[name])}
    stale |= {name for name in predictors if name not in old}
    kept = {key: row for key, row in rows.items() if key[0] in predictors and key[0] not in stale}
    if len(kept) != len(rows) or not steps_path.exists():
        dropped = len(rows) - len(kept)
        if dropped:
            console.print(f"replay: {dropped} rows from other settings or predictors dropped")
        write_jsonl(steps_path, [kept[k] for k in sorted(kept)])
    elif kept:
        write_jsonl(steps_path, [kept[k] for k in sorted(kept)])  # drop a torn line before appending
    if kept:
        console.print(f"replay: resuming, {len(kept)} rows already in {steps_path}")
    write_json(fp_path, {**{n: f for n, f in old.items() if n not in predictors}, **fingerprints})
    latencies = {
        n: v
        for n, v in _state(lat_path).items()
        if isinstance(v, dict) and v.get("fingerprint") == fingerprints.get(n)
    }
    for name, predictor in predictors.items():
        pending = [c for c in contexts if (name, c.id, c.step) not in kept]
        for start in range(0, len(pending), settings.chunk):
            batch = pending[start : start + settings.chunk]
            for context, pred in zip(batch, predictor.predict_many(batch, settings.k)):
                calls, probs, invalid = guarded(pred, guards[context.id])
                row = score_row(
                    name,
                    context,
                    gold[(context.id, context.step)],
                    calls,
                    pred.latency,
                    settings,
                    probs,
                    invalid,
                )
                append_jsonl(steps_path, row)
                kept[_row_key(row)] = row
            console.print(f"replay {name}: {min(start + settings.chunk, len(pending))}/{len(pending)} steps")
        measure = getattr(predictor, "measure_latency", None)
        if measure is not None and settings.latency_samples > 0 and name not in latencies:
            sample = contexts[: settings.latency_samples]
            cold = measure(sample, cached_prefix=False)
            warm = measure(sample, cached_prefix=True)
            latencies[name] = {
                "fingerprint": fingerprints[name],
                "cached_prefix": warm,
                "no_cached_prefix": cold,
                "cached_prefix_stats": latency_stats(warm),
                "no_cached_prefix_stats": latency_stats(cold),
            }
            write_json(lat_path, latencies)
    order = {(c.id, c.step): i for i, c in enumerate(contexts)}
    all_rows = sorted(
        (r for r in kept.values() if (r["id"], r["step"]) in order),
        key=lambda r: (list(predictors).index(r["predictor"]), order[(r["id"], r["step"])]),
    )
    write_jsonl(steps_path, all_rows)
    by_name = {name: [r for r in all_rows if r["predictor"] == name] for name in predictors}
    trace_map = {t.id: t for t in traces}
    predictor_summaries: dict[str, Any] = {}
    timeline: list[dict[str, Any]] = []
    for name, rows_ in by_name.items():
        entry, traced = summarise_predictor(name, rows_, trace_map, registry, settings, latencies.get(name))
        timeline += traced
        if name in calibrations:
            entry["calibration"] = calibrations[name]
        if name in latencies:
            entry["next_call_latency"] = {
                "cached_prefix": latencies[name]["cached_prefix_stats"],
                "no_cached_prefix": latencies[name]["no_cached_prefix_stats"],
            }
        predictor_summaries[name] = entry
    tests = {}
    for a, b in itertools.combinations(predictors, 2):
        ra, rb = by_name[a], by_name[b]
        tests[f"{b} vs {a}"] = {
            key: paired([r[key] for r in ra], [r[key] for r in rb])
            for key in ("hit_at_1", "name_hit_at_1", "hit_at_k")
        }
    summary = ReplaySummary.new(
        traces=len(traces),
        steps=len(contexts),
        k=settings.k,
        matcher=settings.matcher,
        threshold=settings.threshold if settings.matcher == "jaccard" else None,
        latency_model=settings.latency.describe(),
        speculator_latency={n: str(d) for n, d in settings.speculator_latency.items()},
        settings=settings.describe(),
        predictors=list(predictors),
        **predictor_summaries,
        paired=tests,
    )
    write_jsonl(out / "timeline.jsonl", timeline)
    return summary.write(out / "summary.json")
