"""What a replay's rows add up to: hit rates with intervals and breakdowns, latency, and the
simulated wall clock (top guess, all k, the launch policy's λ sweep), plus each trace's simulated
steps for the report's timeline (``timeline.jsonl``)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from specdecode.evaluate.metrics import breakdown, rate
from specdecode.records import ToolCall, TraceRecord
from specdecode.registry import Registry
from specdecode.results import TimelineRow
from specdecode.speculate.match import make_matcher
from specdecode.speculate.policy import LAMBDAS, LaunchPolicy, registry_costs, with_probs
from specdecode.speculate.simulate import Distribution, Step, Totals, keyed_rng, simulate_step, sweep

if TYPE_CHECKING:
    from specdecode.speculate.replay import ReplaySettings


def is_read_only(step: Any, registry: Registry, tool: str) -> bool:
    """A step's own ``read_only`` mark, else the registry's (unknown tools are not read-only)."""
    mark = (getattr(step, "model_extra", None) or {}).get("read_only") if step is not None else None
    if isinstance(mark, bool):
        return mark
    spec = registry.get(tool)
    return bool(spec and spec.read_only)


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_stats(values: Sequence[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
        "mean": statistics.fmean(values) if values else None,
    }


def expected_hidden(settings: ReplaySettings, speculator_mean: float) -> Any:
    """What a hit of tool ``t`` can be expected to hide: the tool's mean latency, at most the
    actor's mean think time left after the speculator's (the policy's ``hidden seconds``)."""
    per_tool = dict(settings.latency.per_tool)
    room = max(0.0, settings.latency.actor.mean - speculator_mean)

    def hidden(tool: str) -> float:
        return max(0.0, min(per_tool.get(tool, settings.latency.tool).mean, room))

    return hidden


def simulation_steps(
    rows: Sequence[dict[str, Any]],
    traces: dict[str, TraceRecord],
    registry: Registry,
    settings: ReplaySettings,
    speculator: Distribution | None,
    launch: int = 1,
    policy: LaunchPolicy | None = None,
) -> list[Step]:
    """The simulator's steps for one predictor's rows: actor/tool times from the trace fields or
    the latency model, the speculator's from ``speculator`` (keyed draws) or the row; the calls
    launched are the launch ``policy``'s choice among the candidates (default: the first
    ``launch`` read-only ones, whatever their probability)."""
    matcher = make_matcher(settings.matcher, settings.threshold)
    policy = policy or LaunchPolicy(0.0, launch, {**registry_costs(registry), **settings.costs})
    mean_spec = (
        speculator.mean
        if speculator is not None
        else statistics.fmean([float(r["latency"]) for r in rows] or [0.0])
    )
    hidden = expected_hidden(settings, mean_spec)

    def read_only(tool: str) -> bool:
        return is_read_only(None, registry, tool)

    steps = []
    for row in rows:
        record = traces[row["id"]]
        k = int(row["step"])
        trace_step = record.trace[k]
        extra = trace_step.model_extra or {}
        gold = trace_step.action
        actor = settings.latency.actor_time(record.id, k, extra.get("actor_seconds"))
        tool = settings.latency.tool_time(record.id, k, gold.tool_name, extra.get("tool_seconds"))
        if speculator is not None:
            spec = speculator.sample(keyed_rng(settings.latency.seed, record.id, k, "speculator"))
        else:
            spec = float(row["latency"])
        candidates = [ToolCall.model_validate(c) for c in row["pred_calls"]]
        launched = policy.choose(with_probs(candidates, row.get("pred_probs")), hidden, read_only)
        hit_index = next((i for i, c in enumerate(launched) if matcher(c, gold)), None)
        hit = hit_index is not None and is_read_only(trace_step, registry, gold.tool_name)
        wasted = 0.0
        for i, c in enumerate(launched):
            if i != hit_index or not hit:
                wasted += (
                    tool
                    if c.tool_name == gold.tool_name
                    else settings.latency.tool_time(record.id, k, c.tool_name)
                )
        steps.append(Step(actor, tool, spec, hit, len(launched), wasted))
    return steps


def _reliability(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """How well the top candidate's probability predicted a hit on these steps (None: the
    predictor gives no probabilities)."""
    from specdecode.speculate.calibration import reliability

    pairs = [(float(r["pred_probs"][0]), bool(r["hit_at_1"])) for r in rows if r.get("pred_probs")]
    if not pairs:
        return None
    return reliability([p for p, _ in pairs], [y for _, y in pairs])


def summarise_predictor(
    name: str,
    rows: Sequence[dict[str, Any]],
    traces: dict[str, TraceRecord],
    registry: Registry,
    settings: ReplaySettings,
    measured: dict[str, Any] | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Hit rates with intervals and breakdowns, latency, and the simulated wall clock
    (``results.PredictorSummary``); and each trace's simulated steps with the top guess launched
    (``results.TimelineRow``)."""
    flag = lambda key: lambda r: r[key]  # noqa: E731
    rates = {
        key: rate([r[key] for r in rows])
        for key in (
            "hit_at_1",
            "hit_at_k",
            "name_hit_at_1",
            "name_hit_at_k",
            "exact_hit_at_1",
            "normalised_hit_at_1",
        )
    }
    given = settings.speculator_latency.get(name) or settings.speculator_latency.get("*")
    if given is not None:
        speculator, source = given, f"given {given}"
    elif measured and measured.get("cached_prefix"):
        speculator = Distribution("empirical", tuple(measured["cached_prefix"]))
        source = "measured at batch 1 with the cached prefix"
    else:
        speculator, source = None, "measured per prediction (replay's batches)"
    top1_steps = simulation_steps(rows, traces, registry, settings, speculator, launch=1)
    top1 = Totals()
    for step in top1_steps:
        top1.add(step)
    at_k_steps = simulation_steps(rows, traces, registry, settings, speculator, launch=settings.k)
    at_k = Totals()
    for step in at_k_steps:
        at_k.add(step)
    sim1 = top1.summary(settings.cost_per_call)
    frontier = []
    for lam in LAMBDAS:
        policy = LaunchPolicy(lam, settings.k, {**registry_costs(registry), **settings.costs})
        totals = Totals()
        for step in simulation_steps(rows, traces, registry, settings, speculator, policy=policy):
            totals.add(step)
        summary_ = totals.summary(settings.cost_per_call)
        frontier.append(
            {
                "lambda": lam,
                "time_saved_seconds": summary_["time_saved_seconds"],
                "time_saved_share": summary_["time_saved_share"],
                "speedup": summary_["speedup"],
                "wasted_per_step": summary_["wasted_calls"] / max(len(rows), 1),
                "launched_per_step": summary_["launched_calls"] / max(len(rows), 1),
                "hits_used": summary_["hits_used"],
            }
        )
    summary = {
        "steps": len(rows),
        "invalid_predictions": sum(int(r.get("invalid", 0)) for r in rows),
        "steps_with_invalid": sum(1 for r in rows if r.get("invalid")),
        "hit_at_1": rates["hit_at_1"]["mean"],
        "hit_at_k": rates["hit_at_k"]["mean"],
        "name_hit_at_1": rates["name_hit_at_1"]["mean"],
        "name_hit_at_k": rates["name_hit_at_k"]["mean"],
        "k": settings.k,
        "matcher": settings.matcher,
        "rates": rates,
        "per_step_index": {
            key: breakdown(rows, lambda r: r["step"], flag(key)) for key in ("hit_at_1", "name_hit_at_1")
        },
        "per_level": {
            key: breakdown(rows, lambda r: r["level"], flag(key)) for key in ("hit_at_1", "name_hit_at_1")
        },
        "per_tool": {
            key: breakdown(rows, lambda r: r["gold_tool"], flag(key)) for key in ("hit_at_1", "name_hit_at_1")
        },
        "latency": {**latency_stats([float(r["latency"]) for r in rows]), "source": "replay batches"},
        "speculator_latency_source": source,
        "speedup": sim1["speedup"],
        "bound": sim1["bound"],
        "time_saved_seconds": sim1["time_saved_seconds"],
        "wasted_calls": sim1["wasted_calls"],
        "wasted_cost": sim1["wasted_cost"],
        "simulation": sim1,
        "simulation_at_k": at_k.summary(settings.cost_per_call),
        "sweep": sweep(top1_steps),
        "frontier": frontier,
        "reliability": _reliability(rows),
    }
    return summary, timeline_rows(name, list(rows), top1_steps)


def timeline_rows(name: str, rows: list[dict[str, Any]], steps: list[Any]) -> list[dict[str, Any]]:
    """``timeline.jsonl`` rows of one predictor from its replay rows and their simulated steps."""
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for r, step in zip(rows, steps):
        outcome = simulate_step(step)
        by_trace.setdefault(str(r["id"]), []).append(
            {
                "step": int(r["step"]),
                "tool": str(r.get("gold_tool")),
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
    return [
        TimelineRow.model_validate(
            {"predictor": name, "id": tid, "steps": sorted(s, key=lambda x: x["step"])}
        ).dump()
        for tid, s in by_trace.items()
    ]
