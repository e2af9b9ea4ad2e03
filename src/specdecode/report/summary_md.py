"""The demo's ``summary.md``: the stages' results as plain Markdown (the report proper is
``report.md``/``report.html``). Rates are written by :func:`specdecode.report.format.rate_text`."""

from __future__ import annotations

import math
from collections.abc import Mapping

from specdecode.report.format import DASH, rate_text
from specdecode.results import (
    AgentCheck,
    AgentStage,
    CompareStage,
    DataStage,
    PairedTest,
    Rate,
    ReplaySummary,
    SpeculateStage,
    StageResult,
    TrainStage,
)
from specdecode.results.replay import LatencyStats

# Paired comparisons of the replay table, (a, b) read "a vs b", when both were replayed.
REPLAY_PAIRS = (
    ("verify", "pattern"),
    ("verify", "lora"),
    ("lora", "pattern"),
    ("hybrid", "pattern"),
    ("lora", "base"),
    ("pattern", "pattern-v1"),
    ("pattern", "bigram-memory"),
)


def _cell(rate: Rate) -> str:
    """``58.3 [33, 83]``: a percentage, its interval in whole percents."""
    return rate_text(rate, unit="", ci_digits=0)


def _ms(stats: LatencyStats | None, key: str) -> str:
    value = getattr(stats, key) if stats is not None else None
    return DASH if value is None else f"{1000 * value:.0f}"


def _pair(summary: ReplaySummary, a: str, b: str) -> PairedTest | None:
    """The hit@1 test of ``a vs b``, wins and losses swapped when it was stored as ``b vs a``."""
    for key, swap in ((f"{a} vs {b}", False), (f"{b} vs {a}", True)):
        if key in summary.paired:
            test = summary.paired[key].get("hit_at_1")
            if test is None:
                return None
            return test.model_copy(update={"wins": test.losses, "losses": test.wins}) if swap else test
    return None


def replay_markdown(
    summary: ReplaySummary, latency_note: str, title: str = "Speculation (replay of the test split)"
) -> list[str]:
    """Markdown for a replay summary: hit rates with intervals, paired tests against the
    pattern table, the speculators' batch-1 latency."""
    k = summary.k
    lines = [
        "",
        f"## {title}",
        "",
        f"{summary.steps} steps of {summary.traces} test traces. At each step every predictor "
        f"sees the question and the gold prefix and proposes up to {k} calls. A hit is name + "
        "normalised arguments (the headline: a call with other arguments is wasted); name hits are "
        "secondary. 95 % bootstrap intervals in brackets. Simulated latencies: "
        f"{latency_note}, speculator as measured.",
        "",
        f"| predictor | hit@1 % | hit@{k} % | name hit@1 % | name hit@{k} % | speed-up | bound "
        "| wasted calls |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.results.items():
        cells = " | ".join(
            _cell(s.rate(key)) for key in ("hit_at_1", "hit_at_k", "name_hit_at_1", "name_hit_at_k")
        )
        lines.append(f"| {name} | {cells} | {s.speedup:.3f} | {s.bound:.3f} | {s.wasted_calls} |")
    lines += ["", "Paired exact McNemar tests on hit@1 (name + arguments), same steps:", ""]
    lines += ["| comparison | wins / ties / losses | p |", "|---|---:|---:|"]
    for a, b in REPLAY_PAIRS:
        t = _pair(summary, a, b)
        if t is not None:
            lines.append(f"| {a} vs {b} | {t.wins} / {t.ties} / {t.losses} | {t.mcnemar_p:.2g} |")
    lines += [
        "",
        "Speculator next-call latency at batch 1 (ms), with and without the cached prompt prefix:",
        "",
        "| predictor | p50 cached | p95 cached | p50 uncached | p95 uncached |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in summary.results.items():
        lat = s.next_call_latency
        if lat is not None:
            warm, cold = lat.cached_prefix, lat.no_cached_prefix
            cells = " | ".join(_ms(stats, q) for stats in (warm, cold) for q in ("p50", "p95"))
            lines.append(f"| {name} | {cells} |")
    lines += ["", "Per-step rows: `speculate/replay/steps.jsonl`; summary: `speculate/replay/summary.json`."]
    return lines


def agent_lines(check: AgentCheck) -> list[str]:
    """The live agent check: measured against replay's prediction."""
    c = check
    return [
        "## Live agent (recorded actor, tools that sleep)",
        "",
        f"{c.traces} test traces ({c.steps} calls) replayed as a live agent: the actor "
        "thinks 60 ms per step, tools sleep 20–60 ms (final answer free); the pattern table "
        "speculates through `SpeculativeExecutor`.",
        "",
        "| | without executor | with executor | saved | speed-up |",
        "|---|---:|---:|---:|---:|",
        f"| measured | {c.wall_without_s:.2f} s | {c.wall_with_s:.2f} s | "
        f"{c.measured_saving_s:.2f} s | {c.measured_speedup:.3f}× |",
        f"| replay's prediction | {c.predicted_baseline_s:.2f} s | "
        f"{c.predicted_speculative_s:.2f} s | {c.predicted_saving_s:.2f} s | "
        f"{c.predicted_speedup:.3f}× |",
        "",
        f"Executor: {c.hits} hits, {c.misses} misses, {c.wasted_calls} wasted calls "
        f"(replay predicted {c.predicted_wasted_calls}); measured saving "
        f"{100 * c.relative_error:.0f} % away from the prediction.",  # type: ignore[operator]
    ]


def _rate(rate: Rate) -> str:
    """``0.583 [0.33, 0.83]``."""
    return rate_text(rate, scale=1.0, digits=3, ci_digits=2, unit="")


def _data_lines(d: DataStage) -> list[str]:
    return [
        f"## Data\n\n{d.n} synthetic GAIA-format traces (registry `{d.registry}`, seed "
        f"{d.seed}), split by level:\n",
        "| split | L1 | L2 | L3 | total |",
        "|---|---:|---:|---:|---:|",
        *(f"| {k} | {v.L1} | {v.L2} | {v.L3} | {v.total} |" for k, v in d.levels.items()),
    ]


def _train_lines(t: TrainStage) -> list[str]:
    return [
        "",
        "## Training",
        "",
        f"LoRA r={t.lora_r} on SmolLM2-135M-Instruct, `{t.form}` form, {t.steps} steps of "
        f"{t.batch} examples ({t.train_seconds} s, mixed precision: {t.mixed_precision}).",
        "",
        "| | validation loss | perplexity |",
        "|---|---:|---:|",
        f"| before training | {t.initial_eval_loss:.3f} | {math.exp(t.initial_eval_loss):.2f} |",  # type: ignore[arg-type]
        f"| after training | {t.final_eval_loss:.3f} | {t.final_eval_perplexity:.2f} |",
    ]


def _compare_lines(c: CompareStage) -> list[str]:
    lines = [
        "",
        f"## Base vs. LoRA ({c.mode} mode, test split)",
        "",
        f"{c.n} examples{f' (weights in {c.dtype})' if c.dtype else ''}; 95 % bootstrap intervals; "
        "exact McNemar test on the paired outcomes.",
        "",
        "| metric | base | LoRA | wins / ties / losses | McNemar p |",
        "|---|---:|---:|---:|---:|",
    ]
    for metric, base in c.base.items():
        p = c.paired.get(metric)
        paired = f"{p.wins} / {p.ties} / {p.losses} | {p.mcnemar_p:.2g}" if p else "– | –"
        lines.append(f"| {metric} | {_rate(base)} | {_rate(c.lora[metric])} | {paired} |")
    return [*lines, "", f"Per-example results: `{c.file}`."]


def summary_lines(results: Mapping[str, StageResult]) -> list[str]:
    """The Markdown summary of the stages that ran (printed at the end and kept as summary.md)."""
    lines = ["# specdecode demo", ""]
    for result in results.values():
        if isinstance(result, DataStage):
            lines += _data_lines(result)
        elif isinstance(result, TrainStage):
            lines += _train_lines(result)
        elif isinstance(result, CompareStage):
            lines += _compare_lines(result)
        elif isinstance(result, (SpeculateStage, AgentStage)):
            lines += ["", *result.lines]
    return lines + _stage_time_lines(results)


def _stage_time_lines(results: Mapping[str, StageResult]) -> list[str]:
    """Each stage's wall time when it ran (a reused stage keeps the time of the run that made it)."""
    timed = {name: r.seconds for name, r in results.items() if r.seconds is not None}
    if not timed:
        return []
    rows = [f"| {name} | {seconds:.0f} |" for name, seconds in timed.items()]
    total = f"| **total** | **{sum(timed.values()):.0f}** |"
    return ["", "## Stage times", "", "| stage | seconds |", "|---|---:|", *rows, total]
