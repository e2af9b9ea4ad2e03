"""Stage 8 — the report: one Markdown file and one self-contained HTML page with plots, from any
run directory (training, eval/compare and speculation outputs in any combination)."""

from __future__ import annotations

from specdecode.report.build import write_report

__all__ = ["write_report"]
