"""The demo's speculation stage: fit the tables, replay every predictor on the test split with
the embedded model and the demo adapter, and return its Markdown for ``summary.md``
(:func:`specdecode.report.summary_md.replay_markdown`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from specdecode.records import TraceRecord
from specdecode.registry import Registry, load_registry
from specdecode.report.summary_md import replay_markdown
from specdecode.results import ReplaySummary

# Demo latencies: an actor that thinks 2 s per step, tools around 1 s (log-normal), answers free.
ACTOR = "fixed:2.0"
TOOLS = ("lognormal:0,0.6", "final_answer=fixed:0")


def speculation_stage(
    out_dir: str | Path,
    train_traces: str | Path | Sequence[TraceRecord],
    test_traces: str | Path | Sequence[TraceRecord],
    adapter_dir: str | Path | None,
    registry: str | Registry = "tools4",
    base_model: str = "smollm2-135m",
    k: int = 3,
    latency_samples: int = 2,
    samples: int = 0,
    max_new_tokens: int = 48,
    val_traces: str | Path | Sequence[TraceRecord] | None = None,
    dtype: str = "auto",
) -> list[str]:
    """Fit + replay every registered predictor (the tables and their ablations, base, lora,
    hybrid, verify) under ``OUT/speculate/``; the report's Markdown lines. ``verify`` calibrates
    on ``val_traces``. Reruns resume from the rows already written.

    Sized for a 2-core CPU: model answers are constrained to one call (short, always parseable;
    when xgrammar is installed), the model predictors' top-k beyond the greedy answer comes from
    ``samples`` sampled answers per step (0 by default: hit@k of base/lora is then their hit@1),
    and ``latency_samples`` steps are timed at batch 1. ``dtype``: the model's weights (``auto``:
    fp32 on CPU)."""
    import importlib.util

    from specdecode.evaluate.backends import make_backend
    from specdecode.models import adapter_form
    from specdecode.speculate.predictors import registry as predictor_registry
    from specdecode.speculate.replay import ReplaySettings
    from specdecode.speculate.run import build_predictors, fit, latency_settings, run_replay

    out = Path(out_dir) / "speculate"
    reg = load_registry(registry) if isinstance(registry, (str, Path)) else registry
    fit(train_traces, out / "fitted")
    backend = make_backend("hf", base_model, str(adapter_dir) if adapter_dir else None, dtype=dtype)
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
    return replay_markdown(
        ReplaySummary.model_validate(summary),
        f"actor `{ACTOR}` per step, tools `{TOOLS[0]}` (final answer free)",
    )
