"""Stage 8 — the report: one Markdown file and one self-contained HTML page with plots, from any
run directory (training, eval/compare and speculation outputs in any combination).

``write_report`` is imported on first use, so ``specdecode.report.format`` (how numbers read,
shared with the CLI) loads without matplotlib."""

from __future__ import annotations

from typing import Any

__all__ = ["write_report"]


def __getattr__(name: str) -> Any:
    if name == "write_report":
        from specdecode.report.build import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
