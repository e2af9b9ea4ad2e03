"""How numbers, calls and code read in the report and the demo's summary — one function per kind
of value, so a rate looks the same wherever it is shown."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from specdecode.results import Call, Rate

DASH = "–"


def number(value: Any) -> float | None:
    """A finite-or-infinite float, else None (bools, text, NaN and missing values)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def rate_text(
    rate: Rate | float | None,
    *,
    scale: float = 100.0,
    digits: int = 1,
    ci_digits: int | None = 1,
    unit: str = " %",
) -> str:
    """A rate and its 95 % interval: ``57.6 % [45.5, 68.2]`` (report), ``58.3 [33, 83]`` (demo
    table, ``unit=""``, ``ci_digits=0``), ``0.583 [0.33, 0.83]`` (``scale=1``); no interval
    when ``ci_digits`` is None or the rate has none; ``–`` without a mean."""
    rate = Rate.of(rate)
    mean = number(rate.mean)
    if mean is None:
        return DASH
    text = f"{scale * mean:.{digits}f}{unit}"
    bounds = rate.interval
    if ci_digits is not None and bounds is not None:
        text += f" [{scale * bounds[0]:.{ci_digits}f}, {scale * bounds[1]:.{ci_digits}f}]"
    return text


def pct(rate: Rate | float | None, ci: bool = True) -> str:
    """``57.6 % [45.5, 68.2]``; ``57.6 %`` with ``ci=False``."""
    return rate_text(rate, ci_digits=1 if ci else None)


def pvalue(p: Any) -> str:
    p = number(p)
    if p is None:
        return DASH
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def num(value: Any, digits: int = 3, unit: str = "") -> str:
    value = number(value)
    return DASH if value is None else f"{value:.{digits}f}{unit}"


def seconds_text(value: Any) -> str:
    """A latency: milliseconds below a second, else seconds."""
    value = number(value)
    if value is None:
        return DASH
    return f"{value * 1000:.2f} ms" if value < 1 else f"{value:.2f} s"


def call_text(call: Call | None, limit: int = 90) -> str:
    """``tool(arg="value", …)``."""
    if call is None:
        return DASH
    args = call.arguments or {}
    inner = (
        ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
        if isinstance(args, dict)
        else str(args)
    )
    text = f"{call.tool_name}({inner})"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def code(text: str) -> str:
    """Inline code for any text (backticks inside are replaced, never breaking the mark)."""
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def share(part: int, whole: int) -> str:
    """``12 (34 %)``."""
    return f"{part} ({100 * part / (whole or 1):.0f} %)"


def figure_suffixes(names: list[str]) -> list[str]:
    """File-name suffixes for repeated figures: none for the first result, then the result's own
    name (``headline_metrics_compare_trace.png``), numbered only when names repeat."""
    out: list[str] = []
    for i, name in enumerate(names):
        suffix = "" if i == 0 else "_" + (re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or str(i))
        if suffix in out:
            suffix = f"{suffix}_{i}"
        out.append(suffix)
    return out
