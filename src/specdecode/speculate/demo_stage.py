"""The demo's speculation stage: fit the tables, replay every predictor on the test split with
the embedded model and the demo adapter, and write the report's Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from specdecode.records import TraceRecord
from specdecode.registry import Registry, load_registry

# Demo latencies: an actor that thinks 2 s per step, tools around 1 s (log-normal), answers free.
ACTOR = "fixed:2.0"
TOOLS = ("lognormal:0,0.6", "final_answer=fixed:0")


def _cell(rates: dict[str, Any], key: str) -> str:
    r = rates[key]
    if r["mean"] is None:
        return "–"
    return f"{100 * r['mean']:.1f} [{100 * r['ci95'][0]:.0f}, {100 * r['ci95'][1]:.0f}]"


def _ms(stats: dict[str, Any] | None, key: str) -> str:
    return "–" if not stats or stats.get(key) is None else f"{1000 * stats[key]:.0f}"


def speculation_stage(
    out_dir: str | Path,
    train_traces: str | Path | Sequence[TraceRecord],
    test_traces: str | Path | Sequence[TraceRecord],
    adapter_dir: str | Path | None,
    registry: str | Registry = "tools4",
    base_model: str = "smollm2-135m",
    k: int = 3,
    latency_samples: int = 3,
    samples: int = 0,
    max_new_tokens: int = 48,
    val_traces: str | Path | Sequence[TraceRecord] | None = None,
) -> list[str]:
    """Fit + replay every registered predictor (the tables and their ablations, base, lora,
    hybrid, verify) under ``OUT/speculate/``; the report's Markdown lines. ``verify`` calibrates
    on ``val_traces``. Reruns resume from the rows already written.

    Sized for a 2-core CPU: model answers are constrained to one call (short, always parseable;
    when xgrammar is installed), the model predictors' top-k beyond the greedy answer comes from
    ``samples`` sampled answers per step (0 by default: hit@k of base/lora is then their hit@1),
    and ``latency_samples`` steps are timed at batch 1."""
    import importlib.util

    from specdecode.evaluate.backends import make_backend
    from specdecode.models import adapter_form
    from specdecode.speculate.predictors import registry as predictor_registry
    from specdecode.speculate.replay import ReplaySettings
    from specdecode.speculate.run import build_predictors, fit, latency_settings, run_replay

    out = Path(out_dir) / "speculate"
    reg = load_registry(registry) if isinstance(registry, (str, Path)) else registry
    fit(train_traces, out / "fitted")
    backend = make_backend("hf", base_model, str(adapter_dir) if adapter_dir else None)
    names = [n for n in predictor_registry.names() if predictor_registry.spec_of(n).in_demo]
    if not adapter_dir:
        names = [n for n in names if not predictor_registry.spec_of(n).needs_adapter]
    predictors = build_predictors(
        names,
        out / "fitted",
        backend,
        form=adapter_form(adapter_dir),
        constrained=importlib.util.find_spec("xgrammar") is not None,
        batch_size=16,
        max_new_tokens=max_new_tokens,
        samples=samples,
    )
    latency, _ = latency_settings(ACTOR, list(TOOLS), None)
    settings = ReplaySettings(k=k, latency=latency, latency_samples=latency_samples)
    summary = run_replay(test_traces, reg, predictors, out / "replay", settings, val_traces=val_traces)
    return replay_markdown(summary, f"actor `{ACTOR}` per step, tools `{TOOLS[0]}` (final answer free)")


def replay_markdown(
    summary: dict[str, Any], latency_note: str, title: str = "Speculation (replay of the test split)"
) -> list[str]:
    """Markdown for a replay summary: hit rates with intervals, paired tests against the
    pattern table, the speculators' batch-1 latency."""
    k = summary["k"]
    lines = [
        "",
        f"## {title}",
        "",
        f"{summary['steps']} steps of {summary['traces']} test traces. At each step every predictor "
        f"sees the question and the gold prefix and proposes up to {k} calls. A hit is name + "
        "normalised arguments (the headline: a call with other arguments is wasted); name hits are "
        "secondary. 95 % bootstrap intervals in brackets. Simulated latencies: "
        f"{latency_note}, speculator as measured.",
        "",
        f"| predictor | hit@1 % | hit@{k} % | name hit@1 % | name hit@{k} % | speed-up | bound "
        "| wasted calls |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in summary["predictors"]:
        s = summary[name]
        lines.append(
            f"| {name} | {_cell(s['rates'], 'hit_at_1')} | {_cell(s['rates'], 'hit_at_k')} | "
            f"{_cell(s['rates'], 'name_hit_at_1')} | {_cell(s['rates'], 'name_hit_at_k')} | "
            f"{s['speedup']:.3f} | {s['bound']:.3f} | {s['wasted_calls']} |"
        )
    lines += ["", "Paired exact McNemar tests on hit@1 (name + arguments), same steps:", ""]
    lines += ["| comparison | wins / ties / losses | p |", "|---|---:|---:|"]
    for a, b in (
        ("verify", "pattern"),
        ("verify", "lora"),
        ("lora", "pattern"),
        ("hybrid", "pattern"),
        ("lora", "base"),
        ("pattern", "pattern-v1"),
        ("pattern", "bigram-memory"),
    ):
        key = f"{a} vs {b}" if f"{a} vs {b}" in summary["paired"] else f"{b} vs {a}"
        t = summary["paired"].get(key, {}).get("hit_at_1")
        if t is None:
            continue
        if key != f"{a} vs {b}":  # stored as b vs a: swap wins and losses
            t = {**t, "wins": t["losses"], "losses": t["wins"]}
        lines.append(f"| {a} vs {b} | {t['wins']} / {t['ties']} / {t['losses']} | {t['mcnemar_p']:.2g} |")
    lines += [
        "",
        "Speculator next-call latency at batch 1 (ms), with and without the cached prompt prefix:",
        "",
        "| predictor | p50 cached | p95 cached | p50 uncached | p95 uncached |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in summary["predictors"]:
        lat = summary[name].get("next_call_latency")
        if lat:
            warm, cold = lat["cached_prefix"], lat["no_cached_prefix"]
            lines.append(
                f"| {name} | {_ms(warm, 'p50')} | {_ms(warm, 'p95')} | "
                f"{_ms(cold, 'p50')} | {_ms(cold, 'p95')} |"
            )
    lines += ["", "Per-step rows: `speculate/replay/steps.jsonl`; summary: `speculate/replay/summary.json`."]
    return lines
