"""Figures of a speculation replay: hit rates, one trace's timeline, the speed-up sweep, wasted
calls, latency, the launch-policy frontier and calibration."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from specdecode.report.figures.style import (
    HIT,
    INK,
    MISS,
    MUTED,
    color,
    err,
    finite,
    mean,
    new,
    percent_axis,
    short,
    styled,
)
from specdecode.results import PredictorSummary, TimelineRow
from specdecode.results.replay import Reliability

Predictors = Mapping[str, PredictorSummary]  # name → its replay summary, in replay order


@styled
def predictor_hits(predictors: Predictors, k: int) -> Figure | None:
    """hit@1, hit@k (name and arguments) and name-only hit@1 of every predictor, side by side."""
    keys = [("hit_at_1", "hit@1"), ("hit_at_k", f"hit@{k}"), ("name_hit_at_1", "name hit@1")]
    if not predictors:
        return None
    fig, ax = new(3.4)
    width = 0.8 / len(predictors)
    for i, (name, p) in enumerate(predictors.items()):
        xs = [j + (i - (len(predictors) - 1) / 2) * width for j in range(len(keys))]
        rates = [p.rate(key) for key, _ in keys]
        vals = [mean(r) or 0.0 for r in rates]
        errs = [err(p.rates[key]) if key in p.rates else (0.0, 0.0) for key, _ in keys]
        ax.bar(xs, vals, width=width * 0.92, color=color(name, i), label=name)
        ax.errorbar(xs, vals, yerr=list(zip(*errs)), fmt="none", ecolor=INK, elinewidth=0.9, capsize=2)
        for x, v, e in zip(xs, vals, errs):
            ax.text(
                x, v + e[1] + 0.015, f"{100 * v:.0f}", ha="center", va="bottom", fontsize=7.5, color=MUTED
            )
    ax.set_xticks(range(len(keys)), [label for _, label in keys])
    ax.set_ylim(0, 1.08)
    percent_axis(ax)
    ax.grid(axis="x", visible=False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Next-call hit rate of every predictor (95 % intervals)")
    return fig


@styled
def timeline_gantt(trace: TimelineRow) -> Figure | None:
    """One trace, step by step: the actor thinking, the tool running, and — with speculation —
    the speculator's guess, the pre-run call (green when it hit, red when wasted)."""
    steps = trace.steps
    if not steps:
        return None
    fig, ax = new(2.6)
    lanes = {"without speculation": 1.0, "with speculation": 0.0}
    h = 0.34
    t = 0.0
    for s in steps:
        ax.broken_barh([(t, s.actor)], (1 - h / 2, h), color="#cbd5e1", edgecolor="white", lw=0.6)
        ax.broken_barh(
            [(t + s.actor, s.tool_seconds)], (1 - h / 2, h), color="#475569", edgecolor="white", lw=0.6
        )
        ax.text(
            t + s.actor / 2,
            1,
            short(s.tool or "None", 10) if s.actor > 0.9 else "",
            ha="center",
            va="center",
            fontsize=7,
            color=INK,
        )
        t += s.baseline
    t = 0.0
    for s in steps:
        ax.broken_barh([(t, s.actor)], (0 - h / 2, h), color="#cbd5e1", edgecolor="white", lw=0.6)
        spec = max(s.speculator, 0.0)
        if s.launched:
            ax.broken_barh([(t, spec)], (h / 2 + 0.02, 0.09), color=color(trace.predictor), lw=0)
            ax.broken_barh(
                [(t + spec, s.tool_seconds)], (-h / 2 - 0.13, 0.09), color=HIT if s.hit else MISS, lw=0
            )
        if s.hit:
            end = max(s.actor, spec + s.tool_seconds)
            rest = end - s.actor
            if rest > 0:
                ax.broken_barh(
                    [(t + s.actor, rest)], (0 - h / 2, h), color="#475569", edgecolor="white", lw=0.6
                )
        else:
            ax.broken_barh(
                [(t + s.actor, s.tool_seconds)], (0 - h / 2, h), color="#475569", edgecolor="white", lw=0.6
            )
        t += s.speculative
    base, spec_total = trace.baseline, trace.speculative
    ax.text(base, 1, f"  {base:.1f} s", va="center", fontsize=8.5, color=INK)
    ax.text(spec_total, 0, f"  {spec_total:.1f} s", va="center", fontsize=8.5, color=INK)
    ax.set_yticks(list(lanes.values()), list(lanes))
    ax.set_ylim(-0.6, 1.45)
    ax.set_xlim(0, base * 1.1 if base else 1)
    ax.set_xlabel("seconds")
    ax.grid(axis="y", visible=False)
    ax.legend(
        handles=[
            Patch(color="#cbd5e1", label="actor thinks"),
            Patch(color="#475569", label="actor waits for tool"),
            Patch(color=color(trace.predictor), label="speculator"),
            Patch(color=HIT, label="pre-run call, hit"),
            Patch(color=MISS, label="pre-run call, wasted"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.32),
        ncols=5,
        fontsize=8.5,
    )
    ax.set_title(f"One trace, {len(steps)} steps, predictor {trace.predictor}")
    return fig


@styled
def speedup_sweep(predictors: Predictors) -> Figure | None:
    """Simulated speed-up against the tool-time fraction f, with each predictor's bound 1/(1−h·f)
    dashed and the replay's own operating point marked."""
    drawn = False
    fig, ax = new(3.5)
    for i, (name, p) in enumerate(predictors.items()):
        if not p.sweep:
            continue
        drawn = True
        c = color(name, i)
        fs = [r.tool_fraction for r in p.sweep]
        ax.plot(fs, [r.speedup for r in p.sweep], color=c, lw=2, marker="o", ms=3.5, label=name)
        # an unbounded speed-up (every tool second hidden) is stored as null: not drawn
        bounds = [math.nan if r.bound is None else r.bound for r in p.sweep]
        ax.plot(fs, bounds, color=c, lw=1, ls="--", alpha=0.8)
        fraction = p.simulation.tool_fraction if p.simulation else None
        if finite(fraction) and finite(p.speedup):
            ax.plot([fraction], [p.speedup], marker="D", ms=7, color=c, mec="white", zorder=5)
    if not drawn:
        return None
    ax.axhline(1.0, color=MUTED, lw=0.8)
    ax.set_xlabel("tool-time fraction f of the baseline")
    ax.set_ylabel("speed-up (×)")
    ax.set_xlim(0, 1)
    percent_axis(ax, "x")
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], color=MUTED, ls="--", label="bound 1/(1−h·f)"),
        Line2D([], [], color=MUTED, marker="D", ls="", label="this replay"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Simulated speed-up vs tool-time fraction")
    return fig


@styled
def wasted_calls(predictors: Predictors, k: int) -> Figure | None:
    """Wasted speculative calls per step, launching the top guess or all k."""
    rows = [
        (name, p.steps, p.wasted_top1, p.simulation_at_k.wasted_calls if p.simulation_at_k else None)
        for name, p in predictors.items()
        if p.steps
    ]
    if not rows:
        return None
    fig, ax = new(0.5 * len(rows) + 1.3)
    for y, (name, steps, top1, at_k) in enumerate(reversed(rows)):
        if finite(top1):
            ax.barh(y + 0.2, top1 / steps, height=0.36, color=color(name, y))
            ax.text(top1 / steps, y + 0.2, f"  {top1}", va="center", fontsize=8, color=INK)
        if finite(at_k):
            ax.barh(y - 0.2, at_k / steps, height=0.36, color=color(name, y), alpha=0.45)
            ax.text(at_k / steps, y - 0.2, f"  {at_k}", va="center", fontsize=8, color=INK)
    ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)])
    ax.set_xlabel("wasted calls per step")
    ax.grid(axis="y", visible=False)
    ax.legend(
        handles=[
            Patch(color=MUTED, label="top guess launched"),
            Patch(color=MUTED, alpha=0.45, label=f"all {k} launched"),
        ],
        loc="lower right",
    )
    ax.set_title("Wasted speculative calls (read-only tools only)")
    return fig


@styled
def latency_distribution(samples: Mapping[str, Sequence[float | None]], title: str) -> Figure | None:
    """Box plots (log scale) of latency samples per predictor or model."""
    kept = {k: [float(v) for v in vs if finite(v) and v > 0] for k, vs in samples.items()}  # type: ignore[operator]
    kept = {k: v for k, v in kept.items() if v}
    if not kept:
        return None
    names = list(kept)
    fig, ax = new(0.5 * len(names) + 1.3)
    parts = ax.boxplot(
        [kept[n] for n in reversed(names)],
        orientation="horizontal",
        widths=0.55,
        patch_artist=True,
        showfliers=True,
        medianprops={"color": INK},
    )
    for patch, name, i in zip(parts["boxes"], reversed(names), range(len(names))):
        patch.set_facecolor(color(name, i))
        patch.set_alpha(0.75)
        patch.set_edgecolor(INK)
    ax.set_yticks(range(1, len(names) + 1), list(reversed(names)))
    ax.set_xscale("log")
    ax.set_xlabel("seconds per next-call prediction (log scale)")
    ax.grid(axis="y", visible=False)
    ax.set_title(title)
    return fig


@styled
def launch_frontier(predictors: Predictors) -> Figure | None:
    """Time saved against wasted calls per step as the launch policy's λ grows: each point launches
    a candidate only when P(c) × hidden seconds ≥ λ × its cost (λ = 0: every read-only candidate)."""
    fig, ax = new(3.6)
    drawn = False
    for i, (name, p) in enumerate(predictors.items()):
        if not p.frontier:
            continue
        drawn = True
        xs = [f.wasted_per_step for f in p.frontier]
        ys = [f.time_saved_share for f in p.frontier]
        ax.plot(xs, ys, color=color(name, i), lw=1.8, marker="o", ms=3.5, label=name)
    if not drawn:
        return None
    ax.set_xlabel("wasted speculative calls per step")
    ax.set_ylabel("share of wall-clock time saved")
    percent_axis(ax, "y")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Launch policy: time saved vs wasted calls (λ sweep)")
    return fig


@styled
def reliability_diagrams(diagrams: Mapping[str, Reliability]) -> Figure | None:
    """Predicted probability against the observed hit rate, per probability bin (marker size: the
    bin's share of steps); the diagonal is perfect calibration. ``diagrams``: label → reliability."""
    series = {k: [b for b in v.bins if b.n] for k, v in diagrams.items()}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig, ax = new(3.6)
    ax.plot([0, 1], [0, 1], color=MUTED, lw=1, ls="--", label="perfect")
    for i, (label, bins) in enumerate(series.items()):
        total = sum(b.n for b in bins) or 1
        name = label.split(" ")[0]
        ece = diagrams[label].ece
        text = f"{label} (ECE {ece:.3f})" if finite(ece) else label
        predicted, observed = [b.predicted for b in bins], [b.observed for b in bins]
        ax.plot(predicted, observed, color=color(name, i), lw=1.5, label=text)
        ax.scatter(
            predicted,
            observed,
            s=[20 + 200 * b.n / total for b in bins],
            color=color(name, i),
            alpha=0.8,
            zorder=3,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability of the top candidate")
    ax.set_ylabel("observed hit rate")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Calibration: predicted vs observed")
    return fig
