"""Figures of a training run and of base model vs adapter: loss curves, metric bars, a rate by
group (bars) or by step index (lines, also the replay's), the first-tool confusion and the
failure modes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from specdecode.report.figures.style import (
    ADAPTER,
    HIT,
    INK,
    MUTED,
    WIDTH,
    Rates,
    color,
    err,
    finite,
    is_num,
    mean,
    new,
    percent_axis,
    short,
    sort_groups,
    styled,
)
from specdecode.results import TrainingCurves


@styled
def loss_curves(curves: TrainingCurves, title: str = "Training and validation loss") -> Figure | None:
    train = [p for p in curves.train if finite(p.loss)]
    val = [p for p in curves.validation if finite(p.loss)]
    if not train and not val:
        return None
    fig, ax = new(3.4)
    if train:
        ax.plot([p.step for p in train], [p.loss for p in train], color=ADAPTER, lw=2, label="training loss")
    if val:
        seen: dict[Any, float] = {}
        for p in val:
            seen[p.step] = p.loss  # type: ignore[assignment]  # a repeated final evaluation is drawn once
        ax.plot(
            list(seen), list(seen.values()), color="#f59e0b", lw=2, marker="o", ms=5, label="validation loss"
        )
    lrs = [(p.step, p.learning_rate) for p in train if finite(p.learning_rate)]
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


@styled
def metric_bars(
    series: Mapping[str, Rates],
    metrics: Sequence[str],
    labels: Mapping[str, str] | None = None,
    title: str = "Base vs adapter (95 % bootstrap intervals)",
) -> Figure | None:
    """Horizontal grouped bars: one group per metric, one bar per series (``{series: {metric: rate}}``)."""
    metrics = [m for m in metrics if any(mean(s.get(m)) is not None for s in series.values())]
    if not metrics or not series:
        return None
    labels = labels or {}
    fig, ax = new(0.3 * len(metrics) * max(1, len(series)) + 1.0)
    height = 0.8 / len(series)
    names = list(series)
    for i, name in enumerate(names):
        ys = [
            len(metrics) - 1 - j + (len(names) - 1 - i - (len(names) - 1) / 2) * height
            for j in range(len(metrics))
        ]
        rates = [series[name].get(m) for m in metrics]
        values = [mean(r) or 0.0 for r in rates]
        errs = [err(r) for r in rates]
        ax.barh(ys, values, height=height * 0.92, color=color(name, i), label=name)
        ax.errorbar(values, ys, xerr=list(zip(*errs)), fmt="none", ecolor=INK, elinewidth=1, capsize=2.5)
        for y, v, e in zip(ys, values, errs):
            ax.text(v + e[1] + 0.012, y, f"{100 * v:.0f} %", va="center", ha="left", fontsize=8.5, color=INK)
    ax.set_yticks(range(len(metrics)), [labels.get(m, m) for m in reversed(metrics)])
    ax.set_xlim(0, 1.08)
    percent_axis(ax, "x")
    ax.grid(axis="y", visible=False)
    ax.legend(loc="upper right", ncols=len(names))
    ax.set_title(title)
    return fig


def _group_size(series: Mapping[str, Rates], group: str) -> int | None:
    return next((t[group].n for t in series.values() if group in t), None)


@styled
def breakdown_bars(
    panels: Sequence[tuple[str, Mapping[str, Rates]]],
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
            groups += [g for g in table if g not in groups]
        if groups:
            drawn.append((xlabel, series, sort_groups(groups)))
    if not drawn:
        return None
    names = list(drawn[0][1])
    slots = sum(len(groups) for _, _, groups in drawn)
    width = min(WIDTH + 2, 2.2 + slots * (0.32 * len(names) + 0.35))
    fig, axes = new(
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
            values = [mean(r) or 0.0 for r in rates]
            ax.bar(xs, values, width=bar * 0.92, color=color(name, i), label=name)
            ax.errorbar(
                xs,
                values,
                yerr=list(zip(*[err(r) for r in rates])),
                fmt="none",
                ecolor=INK,
                elinewidth=0.9,
                capsize=2,
            )
        labels = []
        for g in groups:
            n = _group_size(series, g)
            labels.append(f"{short(g, 14)}\nn={n}" if n is not None else short(g, 14))
        many = not all(is_num(g) for g in groups) and (
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
    percent_axis(axes[0])
    axes[0].set_ylabel(ylabel)
    fig.suptitle(title, x=0.01, ha="left", fontweight="bold", fontsize=11.5)
    if len(names) > 1:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper right", ncols=len(names))
    return fig


@styled
def breakdown_lines(series: Mapping[str, Rates], title: str, xlabel: str) -> Figure | None:
    """A rate per step index as lines, one per predictor."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig, ax = new(3.2)
    for i, (name, table) in enumerate(series.items()):
        groups = sort_groups(list(table))
        xs = [float(g) if is_num(g) else j for j, g in enumerate(groups)]
        ax.plot(
            xs,
            [mean(table[g]) or 0.0 for g in groups],
            marker="o",
            ms=4,
            lw=1.8,
            color=color(name, i),
            label=name,
        )
    ax.set_ylim(0, 1.05)
    percent_axis(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("hit@1 (name and arguments)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title)
    return fig


@styled
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
    fig, axes = new(
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
        ax.set_xticks(range(len(pred)), [short(p) for p in pred], rotation=35, ha="right")
        ax.set_yticks(range(len(gold)), [short(g) for g in gold])
        ax.grid(False)
        ax.set_xlabel("predicted first tool")
        ax.set_title(name)
    axes[0].set_ylabel("gold first tool")
    return fig


FAILURE_COLOURS = {
    "correct": HIT,
    "wrong_arguments": "#f59e0b",
    "wrong_tool": "#f97316",
    "unknown_tool": "#a855f7",
    "no_call": "#9ca3af",
}


@styled
def failure_bars(counts: Mapping[str, Mapping[str, int]], modes: Sequence[str]) -> Figure | None:
    """Stacked horizontal bars: every example of a series split by outcome of its first call."""
    counts = {k: v for k, v in counts.items() if v and v["examples"]}
    if not counts:
        return None
    palette = FAILURE_COLOURS
    parts = ["correct", *[m for m in modes if m in palette and m != "correct"]]
    fig, ax = new(0.6 * len(counts) + 1.3)
    names = list(counts)
    for y, name in enumerate(reversed(names)):
        total, left = counts[name]["examples"], 0.0
        for part in parts:
            share = counts[name][part] / total
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
    percent_axis(ax, "x")
    ax.grid(axis="y", visible=False)
    ax.legend(
        handles=[Patch(color=palette[p], label=p.replace("_", " ")) for p in parts],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25),
        ncols=len(parts),
    )
    ax.set_title("First call: correct or how it failed")
    return fig
