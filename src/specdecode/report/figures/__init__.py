"""One function per figure (matplotlib's object API: no pyplot state, no backend switched at
import). Each takes numbers already computed by ``evaluate.metrics`` or ``speculate`` (typed by
:mod:`specdecode.results`) and returns a ``Figure`` — or ``None`` when it has nothing to draw;
``save`` writes it as PNG and SVG and keeps the PNG for embedding."""

from specdecode.report.figures.comparison import (
    breakdown_bars,
    breakdown_lines,
    confusion_heatmaps,
    failure_bars,
    loss_curves,
    metric_bars,
)
from specdecode.report.figures.speculation import (
    latency_distribution,
    launch_frontier,
    predictor_hits,
    reliability_diagrams,
    speedup_sweep,
    timeline_gantt,
    wasted_calls,
)
from specdecode.report.figures.style import PALETTE, FigureFile, color, save

__all__ = [
    "PALETTE",
    "FigureFile",
    "breakdown_bars",
    "breakdown_lines",
    "color",
    "confusion_heatmaps",
    "failure_bars",
    "latency_distribution",
    "launch_frontier",
    "loss_curves",
    "metric_bars",
    "predictor_hits",
    "reliability_diagrams",
    "save",
    "speedup_sweep",
    "timeline_gantt",
    "wasted_calls",
]
