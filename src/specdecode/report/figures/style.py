"""The report's figure style and what every figure function shares: colours, the styled
``Figure`` factory, saving as PNG and SVG, rate means and their error bars."""

from __future__ import annotations

import base64
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import matplotlib
from matplotlib.figure import Figure

from specdecode.results import Rate

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

F = TypeVar("F", bound=Callable[..., Any])
Rates = Mapping[str, Rate]  # group or metric → rate


@dataclass
class FigureFile:
    name: str
    png: Path
    svg: Path
    png_base64: str
    width_px: int
    height_px: int


def styled(func: F) -> F:
    """Draw the whole figure under the report's style (titles, spines, legends read it late)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.rc_context(STYLE):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def color(name: str, index: int = 0) -> str:
    """A series' colour: the comparison's palette, else the predictor registry's, else a spare."""
    if name in PALETTE:
        return PALETTE[name]
    from specdecode.speculate.predictors import registry

    registry.names()  # the shipped predictors are registered
    if name in registry.PREDICTORS:
        return registry.PREDICTORS[name].colour
    return EXTRA[index % len(EXTRA)]


def new(height: float, ncols: int = 1, width: float = WIDTH, **kw: Any) -> tuple[Figure, Any]:
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


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def mean(rate: Rate | None) -> float | None:
    if rate is None or rate.mean is None or math.isnan(rate.mean):
        return None
    return float(rate.mean)


def err(rate: Rate | None) -> tuple[float, float]:
    """Lower/upper error-bar lengths from a rate's ``ci95`` (zero when absent)."""
    m = mean(rate)
    bounds = rate.interval if rate is not None else None
    if m is None or bounds is None:
        return (0.0, 0.0)
    return (max(0.0, m - bounds[0]), max(0.0, bounds[1] - m))


def percent_axis(ax: Any, axis: str = "y") -> None:
    from matplotlib.ticker import PercentFormatter

    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(1.0, decimals=0))


def short(text: str, n: int = 18) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def is_num(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def sort_groups(groups: list[str]) -> list[str]:
    def key(g: str) -> tuple[int, float, str]:
        try:
            return (0, float(g), "")
        except ValueError:
            return (1, 0.0, g)

    return sorted(groups, key=key)
