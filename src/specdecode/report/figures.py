"""One function per figure (matplotlib's object API: no pyplot state, no backend switched at
import). Each takes plain numbers already computed by ``evaluate.metrics`` or ``speculate`` and
returns a ``Figure`` — or ``None`` when it has nothing to draw; ``save`` writes it as PNG and SVG
and keeps the PNG for embedding."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"
BASE = "#9ca3af"
ADAPTER = "#2563eb"
HIT = "#16a34a"
MISS = "#dc2626"
PALETTE = {  # series of the base-vs-adapter comparison; predictors take their registered colour
    "base": "#64748b",
    "lora": "#2563eb",
    "adapter": "#2563eb",
    "model": "#0891b2",
}
EXTRA = ("#0891b2", "#db2777", "#65a30d", "#ea580c", "#4f46e5", "#0d9488")
WIDTH = 9.0  # inches; PNGs are drawn at DPI and shown at ~100 %

STYLE = {
    "font.size": 10,
    "axes.titlesize": 11.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelcolor": INK,
    "axes.edgecolor": "#cbd5e1",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "svg.hashsalt": "specdecode",
}
DPI = 144


@dataclass
class FigureFile:
    name: str
    png: Path
    svg: Path
    png_base64: str
    width_px: int
    height_px: int


def _styled(func):
    """Draw the whole figure under the report's style (titles, spines, legends read it late)."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any):
        with matplotlib.rc_context(STYLE):
            return func(*args, **kwargs)

    return wrapper


def color(name: str, index: int = 0) -> str:
    """A series' colour: the comparison's palette, else the predictor registry's, else a spare."""
    if name in PALETTE:
        return PALETTE[name]
    from specdecode.speculate.predictors import registry

    registry.names()  # the shipped predictors are registered
    spec = registry.PREDICTORS.get(name)
    return spec.colour if spec is not None else EXTRA[index % len(EXTRA)]


def _new(height: float, ncols: int = 1, width: float = WIDTH, **kw: Any):
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(1, ncols, **kw)


def save(fig: Figure, name: str, out_dir: Path) -> FigureFile:
    """Write ``NAME.png`` and ``NAME.svg`` under ``out_dir`` (reproducible: no dates)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    with matplotlib.rc_context(STYLE):
        fig.savefig(png, dpi=DPI, metadata={"Software": None})
        fig.savefig(svg, metadata={"Date": None, "Creator": None})
    width, height = fig.get_size_inches() * DPI
    return FigureFile(
        name, png, svg, base64.b64encode(png.read_bytes()).decode("ascii"), round(width), round(height)
    )


def _mean(rate: Any) -> float | None:
    if isinstance(rate, Mapping):
        value = rate.get("mean")
        return float(value) if isinstance(value, (int, float)) and not math.isnan(value) else None
    if isinstance(rate, (int, float)):
        return float(rate)
    return None


def _err(rate: Any) -> tuple[float, float]:
    """Lower/upper error-bar lengths from a rate's ``ci95`` (zero when absent)."""
    mean = _mean(rate)
    ci = rate.get("ci95") if isinstance(rate, Mapping) else None
    if mean is None or not isinstance(ci, (list, tuple)) or len(ci) != 2 or None in ci:
        return (0.0, 0.0)
    return (max(0.0, mean - float(ci[0])), max(0.0, float(ci[1]) - mean))


def _percent_axis(ax, axis: str = "y") -> None:
    from matplotlib.ticker import PercentFormatter

    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(1.0, decimals=0))


# --------------------------------------------------------------------------- training
@_styled
def loss_curves(curves: Mapping[str, Any], title: str = "Training and validation loss") -> Figure | None:
    train = [p for p in curves.get("train") or [] if isinstance(p, Mapping) and _ok(p.get("loss"))]
    val = [p for p in curves.get("validation") or [] if isinstance(p, Mapping) and _ok(p.get("loss"))]
    if not train and not val:
        return None
    fig, ax = _new(3.4)
    if train:
        ax.plot(
            [p["step"] for p in train], [p["loss"] for p in train], color=ADAPTER, lw=2, label="training loss"
        )
    if val:
        seen: dict[Any, float] = {}
        for p in val:
            seen[p["step"]] = p["loss"]  # a repeated final evaluation is drawn once
        ax.plot(
            list(seen), list(seen.values()), color="#f59e0b", lw=2, marker="o", ms=5, label="validation loss"
        )
    lrs = [(p["step"], p.get("learning_rate")) for p in train if _ok(p.get("learning_rate"))]
    if lrs:
        ax2 = ax.twinx()
        ax2.plot([s for s, _ in lrs], [v for _, v in lrs], color=MUTED, lw=1, ls=":", label="learning rate")
        ax2.set_ylabel("learning rate", color=MUTED)
        ax2.grid(False)
        ax2.spines["right"].set_visible(True)
        ax2.tick_params(axis="y", labelsize=8)
        ax2.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper right")
    else:
        ax.legend(loc="upper right")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    return fig


def _ok(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------- base vs adapter
@_styled
def metric_bars(
    series: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str],
    labels: Mapping[str, str] | None = None,
    title: str = "Base vs adapter (95 % bootstrap intervals)",
) -> Figure | None:
    """Horizontal grouped bars: one group per metric, one bar per series (``{series: {metric: rate}}``)."""
    metrics = [m for m in metrics if any(_mean(s.get(m)) is not None for s in series.values())]
    if not metrics or not series:
        return None
    labels = labels or {}
    fig, ax = _new(0.3 * len(metrics) * max(1, len(series)) + 1.0)
    height = 0.8 / len(series)
    names = list(series)
    for i, name in enumerate(names):
        ys = [
            len(metrics) - 1 - j + (len(names) - 1 - i - (len(names) - 1) / 2) * height
            for j in range(len(metrics))
        ]
        values = [_mean(series[name].get(m)) or 0.0 for m in metrics]
        errs = [_err(series[name].get(m)) for m in metrics]
        ax.barh(ys, values, height=height * 0.92, color=color(name, i), label=name)
        ax.errorbar(values, ys, xerr=list(zip(*errs)), fmt="none", ecolor=INK, elinewidth=1, capsize=2.5)
        for y, v, e in zip(ys, values, errs):
            ax.text(v + e[1] + 0.012, y, f"{100 * v:.0f} %", va="center", ha="left", fontsize=8.5, color=INK)
    ax.set_yticks(range(len(metrics)), [labels.get(m, m) for m in reversed(metrics)])
    ax.set_xlim(0, 1.08)
    _percent_axis(ax, "x")
    ax.grid(axis="y", visible=False)
    ax.legend(loc="upper right", ncols=len(names))
    ax.set_title(title)
    return fig


@_styled
def breakdown_bars(
    panels: Sequence[tuple[str, Mapping[str, Mapping[str, Any]]]],
    title: str,
    ylabel: str = "hit rate",
) -> Figure | None:
    """Grouped bars of a rate per group, one panel per grouping (``[(xlabel, {series: {group:
    rate}})]``: GAIA level, gold tool, step index), one bar per series, 95 % whiskers and each
    group's size under its label. Panels share the y axis; their widths follow their groups."""
    drawn = []
    for xlabel, series in panels:
        groups: list[str] = []
        for table in series.values():
            for g in table or {}:
                if g not in groups:
                    groups.append(g)
        if groups:
            drawn.append((xlabel, series, _sort_groups(groups)))
    if not drawn:
        return None
    names = list(drawn[0][1])
    slots = sum(len(groups) for _, _, groups in drawn)
    width = min(WIDTH + 2, 2.2 + slots * (0.32 * len(names) + 0.35))
    fig, axes = _new(
        3.3,
        ncols=len(drawn),
        width=max(width, 4.5),
        sharey=True,
        gridspec_kw={"width_ratios": [len(g) + 0.6 for _, _, g in drawn]},
    )
    axes = [axes] if len(drawn) == 1 else list(axes)
    bar = 0.8 / len(names)
    for ax, (xlabel, series, groups) in zip(axes, drawn):
        for i, name in enumerate(names):
            table = series.get(name) or {}
            xs = [j + (i - (len(names) - 1) / 2) * bar for j in range(len(groups))]
            rates = [table.get(g) for g in groups]
            values = [_mean(r) or 0.0 for r in rates]
            ax.bar(xs, values, width=bar * 0.92, color=color(name, i), label=name)
            ax.errorbar(
                xs,
                values,
                yerr=list(zip(*[_err(r) for r in rates])),
                fmt="none",
                ecolor=INK,
                elinewidth=0.9,
                capsize=2,
            )
        labels = []
        for g in groups:
            n = next(
                (r.get("n") for t in series.values() if isinstance(r := (t or {}).get(g), Mapping)), None
            )
            labels.append(f"{_short(g, 14)}\nn={n}" if n is not None else _short(g, 14))
        many = not all(_is_num(g) for g in groups) and (
            len(groups) > 6 or sum(min(len(g), 14) for g in groups) > 8 * len(groups)
        )
        ax.set_xticks(
            range(len(groups)),
            labels,
            rotation=35 if many else 0,
            ha="right" if many else "center",
            fontsize=8.5 if many else None,
        )
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", visible=False)
    axes[0].set_ylim(0, 1.05)
    _percent_axis(axes[0])
    axes[0].set_ylabel(ylabel)
    fig.suptitle(title, x=0.01, ha="left", fontweight="bold", fontsize=11.5)
    if len(names) > 1:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper right", ncols=len(names))
    return fig


def _sort_groups(groups: list[str]) -> list[str]:
    def key(g: str):
        try:
            return (0, float(g), "")
        except ValueError:
            return (1, 0.0, g)

    return sorted(groups, key=key)


@_styled
def confusion_heatmaps(tables: Mapping[str, Mapping[str, Mapping[str, int]]]) -> Figure | None:
    """One heat map per series: rows the gold first tool, columns the predicted one (counts)."""
    tables = {k: v for k, v in tables.items() if v}
    if not tables:
        return None
    gold = sorted({g for t in tables.values() for g in t})
    pred = sorted({p for t in tables.values() for row in t.values() for p in row})
    # gold tools first (in the same order) so the diagonal is the diagonal, then the rest
    pred = [p for p in gold if p in pred] + [p for p in pred if p not in gold and p != "<none>"]
    pred += ["<none>"] if any("<none>" in row for t in tables.values() for row in t.values()) else []
    cols = len(tables)
    fig, axes = _new(
        0.42 * len(gold) + 1.9, ncols=cols, width=min(WIDTH, 1.2 + cols * (0.62 * len(pred) + 1.6))
    )
    axes = [axes] if cols == 1 else list(axes)
    vmax = max((c for t in tables.values() for row in t.values() for c in row.values()), default=1)
    for ax, (name, table) in zip(axes, tables.items()):
        grid = [[int(table.get(g, {}).get(p, 0)) for p in pred] for g in gold]
        ax.imshow(grid, cmap="Blues", vmin=0, vmax=max(vmax, 1), aspect="auto")
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                if value:
                    light = value > 0.55 * vmax
                    ax.text(
                        j,
                        i,
                        str(value),
                        ha="center",
                        va="center",
                        fontsize=9,
                        color="white" if light else INK,
                        fontweight="bold" if gold[i] == pred[j] else None,
                    )
        ax.set_xticks(range(len(pred)), [_short(p) for p in pred], rotation=35, ha="right")
        ax.set_yticks(range(len(gold)), [_short(g) for g in gold])
        ax.grid(False)
        ax.set_xlabel("predicted first tool")
        ax.set_title(name)
    axes[0].set_ylabel("gold first tool")
    return fig


def _short(text: str, n: int = 18) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


@_styled
def failure_bars(counts: Mapping[str, Mapping[str, int]], modes: Sequence[str]) -> Figure | None:
    """Stacked horizontal bars: every example of a series split by outcome of its first call."""
    counts = {k: v for k, v in counts.items() if v and v.get("examples")}
    if not counts:
        return None
    palette = {
        "correct": HIT,
        "wrong_arguments": "#f59e0b",
        "wrong_tool": "#f97316",
        "unknown_tool": "#a855f7",
        "no_call": "#9ca3af",
    }
    parts = ["correct", *[m for m in modes if m in palette and m != "correct"]]
    fig, ax = _new(0.6 * len(counts) + 1.3)
    names = list(counts)
    for y, name in enumerate(reversed(names)):
        total, left = counts[name]["examples"], 0.0
        for part in parts:
            share = counts[name].get(part, 0) / total
            if share:
                ax.barh(y, share, left=left, color=palette[part], height=0.6)
                if share >= 0.06:
                    ax.text(
                        left + share / 2,
                        y,
                        str(counts[name][part]),
                        ha="center",
                        va="center",
                        color="white",
                        fontsize=9,
                        fontweight="bold",
                    )
                left += share
    ax.set_yticks(range(len(names)), list(reversed(names)))
    ax.set_xlim(0, 1)
    _percent_axis(ax, "x")
    ax.grid(axis="y", visible=False)
    ax.legend(
        handles=[Patch(color=palette[p], label=p.replace("_", " ")) for p in parts],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25),
        ncols=len(parts),
    )
    ax.set_title("First call: correct or how it failed")
    return fig


# --------------------------------------------------------------------------- speculation
@_styled
def predictor_hits(summary: Mapping[str, Any], predictors: Sequence[str], k: int) -> Figure | None:
    """hit@1, hit@k (name and arguments) and name-only hit@1 of every predictor, side by side."""
    keys = [("hit_at_1", "hit@1"), ("hit_at_k", f"hit@{k}"), ("name_hit_at_1", "name hit@1")]
    predictors = [p for p in predictors if isinstance(summary.get(p), Mapping)]
    if not predictors:
        return None
    fig, ax = _new(3.4)
    width = 0.8 / len(predictors)
    for i, name in enumerate(predictors):
        rates = summary[name].get("rates") or {}
        xs = [j + (i - (len(predictors) - 1) / 2) * width for j in range(len(keys))]
        vals = [_mean(rates.get(key, summary[name].get(key))) or 0.0 for key, _ in keys]
        errs = [_err(rates.get(key)) for key, _ in keys]
        ax.bar(xs, vals, width=width * 0.92, color=color(name, i), label=name)
        ax.errorbar(xs, vals, yerr=list(zip(*errs)), fmt="none", ecolor=INK, elinewidth=0.9, capsize=2)
        for x, v, e in zip(xs, vals, errs):
            ax.text(
                x, v + e[1] + 0.015, f"{100 * v:.0f}", ha="center", va="bottom", fontsize=7.5, color=MUTED
            )
    ax.set_xticks(range(len(keys)), [label for _, label in keys])
    ax.set_ylim(0, 1.08)
    _percent_axis(ax)
    ax.grid(axis="x", visible=False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Next-call hit rate of every predictor (95 % intervals)")
    return fig


@_styled
def breakdown_lines(series: Mapping[str, Mapping[str, Any]], title: str, xlabel: str) -> Figure | None:
    """A rate per step index as lines, one per predictor."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig, ax = _new(3.2)
    for i, (name, table) in enumerate(series.items()):
        groups = _sort_groups(list(table))
        xs = [float(g) if _is_num(g) else j for j, g in enumerate(groups)]
        ax.plot(
            xs,
            [_mean(table[g]) or 0.0 for g in groups],
            marker="o",
            ms=4,
            lw=1.8,
            color=color(name, i),
            label=name,
        )
    ax.set_ylim(0, 1.05)
    _percent_axis(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("hit@1 (name and arguments)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title)
    return fig


def _is_num(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@_styled
def timeline_gantt(timeline: Mapping[str, Any]) -> Figure | None:
    """One trace, step by step: the actor thinking, the tool running, and — with speculation —
    the speculator's guess, the pre-run call (green when it hit, red when wasted)."""
    steps = timeline.get("steps") or []
    if not steps:
        return None
    fig, ax = _new(2.6)
    lanes = {"without speculation": 1.0, "with speculation": 0.0}
    h = 0.34
    t = 0.0
    for s in steps:
        ax.broken_barh([(t, s["actor"])], (1 - h / 2, h), color="#cbd5e1", edgecolor="white", lw=0.6)
        ax.broken_barh(
            [(t + s["actor"], s["tool_seconds"])], (1 - h / 2, h), color="#475569", edgecolor="white", lw=0.6
        )
        ax.text(
            t + s["actor"] / 2,
            1,
            _short(s["tool"], 10) if s["actor"] > 0.9 else "",
            ha="center",
            va="center",
            fontsize=7,
            color=INK,
        )
        t += s["baseline"]
    t = 0.0
    for s in steps:
        ax.broken_barh([(t, s["actor"])], (0 - h / 2, h), color="#cbd5e1", edgecolor="white", lw=0.6)
        spec = max(s["speculator"], 0.0)
        if s["launched"]:
            ax.broken_barh(
                [(t, spec)], (h / 2 + 0.02, 0.09), color=color(timeline.get("predictor", "")), lw=0
            )
            ax.broken_barh(
                [(t + spec, s["tool_seconds"])], (-h / 2 - 0.13, 0.09), color=HIT if s["hit"] else MISS, lw=0
            )
        if s["hit"]:
            end = max(s["actor"], spec + s["tool_seconds"])
            rest = end - s["actor"]
            if rest > 0:
                ax.broken_barh(
                    [(t + s["actor"], rest)], (0 - h / 2, h), color="#475569", edgecolor="white", lw=0.6
                )
        else:
            ax.broken_barh(
                [(t + s["actor"], s["tool_seconds"])],
                (0 - h / 2, h),
                color="#475569",
                edgecolor="white",
                lw=0.6,
            )
        t += s["speculative"]
    base, spec_total = timeline.get("baseline", 0.0), timeline.get("speculative", 0.0)
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
            Patch(color=color(timeline.get("predictor", "")), label="speculator"),
            Patch(color=HIT, label="pre-run call, hit"),
            Patch(color=MISS, label="pre-run call, wasted"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.32),
        ncols=5,
        fontsize=8.5,
    )
    ax.set_title(f"One trace, {len(steps)} steps, predictor {timeline.get('predictor')}")
    return fig


@_styled
def speedup_sweep(summary: Mapping[str, Any], predictors: Sequence[str]) -> Figure | None:
    """Simulated speed-up against the tool-time fraction f, with each predictor's bound 1/(1−h·f)
    dashed and the replay's own operating point marked."""
    drawn = False
    fig, ax = _new(3.5)
    for i, name in enumerate(predictors):
        s = summary.get(name)
        rows = [r for r in (s.get("sweep") or []) if isinstance(r, Mapping)] if isinstance(s, Mapping) else []
        if not rows:
            continue
        drawn = True
        c = color(name, i)
        fs = [r["tool_fraction"] for r in rows]
        ax.plot(fs, [r["speedup"] for r in rows], color=c, lw=2, marker="o", ms=3.5, label=name)
        # an unbounded speed-up (every tool second hidden) is stored as null: not drawn
        ax.plot(
            fs,
            [math.nan if r["bound"] is None else r["bound"] for r in rows],
            color=c,
            lw=1,
            ls="--",
            alpha=0.8,
        )
        sim = s.get("simulation") or {}
        if _ok(sim.get("tool_fraction")) and _ok(s.get("speedup")):
            ax.plot([sim["tool_fraction"]], [s["speedup"]], marker="D", ms=7, color=c, mec="white", zorder=5)
    if not drawn:
        return None
    ax.axhline(1.0, color=MUTED, lw=0.8)
    ax.set_xlabel("tool-time fraction f of the baseline")
    ax.set_ylabel("speed-up (×)")
    ax.set_xlim(0, 1)
    _percent_axis(ax, "x")
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], color=MUTED, ls="--", label="bound 1/(1−h·f)"),
        Line2D([], [], color=MUTED, marker="D", ls="", label="this replay"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Simulated speed-up vs tool-time fraction")
    return fig


@_styled
def wasted_calls(summary: Mapping[str, Any], predictors: Sequence[str], k: int) -> Figure | None:
    """Wasted speculative calls per step, launching the top guess or all k."""
    rows = []
    for name in predictors:
        s = summary.get(name)
        if not isinstance(s, Mapping) or not s.get("steps"):
            continue
        top1 = (s.get("simulation") or {}).get("wasted_calls", s.get("wasted_calls"))
        at_k = (s.get("simulation_at_k") or {}).get("wasted_calls")
        rows.append((name, s["steps"], top1, at_k))
    if not rows:
        return None
    fig, ax = _new(0.5 * len(rows) + 1.3)
    for y, (name, steps, top1, at_k) in enumerate(reversed(rows)):
        if _ok(top1):
            ax.barh(y + 0.2, top1 / steps, height=0.36, color=color(name, y))
            ax.text(top1 / steps, y + 0.2, f"  {top1}", va="center", fontsize=8, color=INK)
        if _ok(at_k):
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


@_styled
def latency_distribution(samples: Mapping[str, Sequence[float]], title: str) -> Figure | None:
    """Box plots (log scale) of latency samples per predictor or model."""
    samples = {k: [float(v) for v in vs if _ok(v) and v > 0] for k, vs in samples.items()}
    samples = {k: v for k, v in samples.items() if v}
    if not samples:
        return None
    names = list(samples)
    fig, ax = _new(0.5 * len(names) + 1.3)
    parts = ax.boxplot(
        [samples[n] for n in reversed(names)],
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


@_styled
def launch_frontier(summary: Mapping[str, Any], predictors: Sequence[str]) -> Figure | None:
    """Time saved against wasted calls per step as the launch policy's λ grows: each point launches
    a candidate only when P(c) × hidden seconds ≥ λ × its cost (λ = 0: every read-only candidate)."""
    fig, ax = _new(3.6)
    drawn = False
    for i, name in enumerate(predictors):
        s = summary.get(name)
        points = (
            [p for p in ((s or {}).get("frontier") or []) if isinstance(p, Mapping)]
            if isinstance(s, Mapping)
            else []
        )
        if not points:
            continue
        drawn = True
        xs = [p["wasted_per_step"] for p in points]
        ys = [p["time_saved_share"] for p in points]
        ax.plot(xs, ys, color=color(name, i), lw=1.8, marker="o", ms=3.5, label=name)
    if not drawn:
        return None
    ax.set_xlabel("wasted speculative calls per step")
    ax.set_ylabel("share of wall-clock time saved")
    _percent_axis(ax, "y")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Launch policy: time saved vs wasted calls (λ sweep)")
    return fig


@_styled
def reliability_diagrams(diagrams: Mapping[str, Mapping[str, Any]]) -> Figure | None:
    """Predicted probability against the observed hit rate, per probability bin (marker size: the
    bin's share of steps); the diagonal is perfect calibration. ``diagrams``: label → reliability."""
    series = {
        k: v
        for k, v in diagrams.items()
        if isinstance(v, Mapping) and [b for b in v.get("bins") or [] if b.get("n")]
    }
    if not series:
        return None
    fig, ax = _new(3.6)
    ax.plot([0, 1], [0, 1], color=MUTED, lw=1, ls="--", label="perfect")
    for i, (label, diagram) in enumerate(series.items()):
        bins = [b for b in diagram["bins"] if b.get("n")]
        total = sum(b["n"] for b in bins) or 1
        name = label.split(" ")[0]
        ece = diagram.get("ece")
        text = f"{label} (ECE {ece:.3f})" if _ok(ece) else label
        ax.plot(
            [b["predicted"] for b in bins],
            [b["observed"] for b in bins],
            color=color(name, i),
            lw=1.5,
            label=text,
        )
        ax.scatter(
            [b["predicted"] for b in bins],
            [b["observed"] for b in bins],
            s=[20 + 200 * b["n"] / total for b in bins],
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
