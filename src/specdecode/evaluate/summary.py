"""One model's summary over its rows: rates with 95 % bootstrap intervals, per level and per gold
tool, the first-tool confusion, parse formats and speed (``results.ModelSummary``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from specdecode.evaluate.metrics import ALL_METRICS, breakdown, confusion, rate


def latency_summary(latencies: Sequence[float], batch_sizes: Sequence[int | None]) -> dict[str, Any]:
    """Per-request latency (each request's batch start to its own last token): mean, p50, p95."""
    import numpy as np

    if not latencies:
        return {"mean_s": None, "p50_s": None, "p95_s": None, "measured_at_batch_1": None}
    values = np.asarray(latencies, dtype=float)
    known = [b for b in batch_sizes if b is not None]
    return {
        "mean_s": round(float(values.mean()), 4),
        "p50_s": round(float(np.percentile(values, 50)), 4),
        "p95_s": round(float(np.percentile(values, 95)), 4),
        "measured_at_batch_1": bool(known) and len(known) == len(batch_sizes) and max(known) == 1,
        "max_batch_size": max(known) if known else None,
    }


def summarise(rows: Sequence[dict[str, Any]], mode: str, prefix: str = "") -> dict[str, Any]:
    """Rates with 95 % bootstrap intervals, per level and per gold tool, confusion, speed."""
    m = lambda name: lambda r: r[f"{prefix}metrics"][name]  # noqa: E731
    latency = [r[f"{prefix}latency"] for r in rows]
    completion = sum(r[f"{prefix}completion_tokens"] for r in rows)
    return {
        "n": len(rows),
        "metrics": {name: rate([m(name)(r) for r in rows]) for name in ALL_METRICS},
        "per_level": {
            name: breakdown(rows, lambda r: r["level"], m(name))
            for name in ("first_call_name", "first_call_exact")
        },
        "per_tool": {
            name: breakdown(rows, lambda r: r["gold_tool"], m(name))
            for name in ("first_call_name", "first_call_exact")
        },
        "confusion_first_tool": confusion(rows, prefix),
        "unknown_tools": sum(len(r[f"{prefix}unknown_tools"]) for r in rows),
        "parse_formats": count(r[f"{prefix}parse_format"] for r in rows),
        "latency_mean_s": sum(latency) / len(latency) if latency else None,
        "latency": latency_summary(latency, [r.get(f"{prefix}batch_size") for r in rows]),
        "tokens_per_s": completion / sum(latency) if latency and sum(latency) else None,
        "mode": mode,
    }


def count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))
