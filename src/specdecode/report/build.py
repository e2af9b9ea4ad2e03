"""Assemble the report from what ``collect`` found — the sections in ``SECTIONS`` order, each a
list of small blocks (``report/sections/``) — then write ``report.md``, ``report.html`` and
``figures/`` (PNG and SVG of every figure)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from specdecode.errors import InputError
from specdecode.outputs import write_text
from specdecode.report import figures as F
from specdecode.report.collect import RunData, collect
from specdecode.report.context import Context
from specdecode.report.document import Card, Cards, Document, Para, Section
from specdecode.report.format import code, count, figure_suffixes
from specdecode.report.sections.comparison import comparison_section
from specdecode.report.sections.setup import setup_section
from specdecode.report.sections.speculation import speculation_section
from specdecode.report.sections.training import training_section

__all__ = ["SECTIONS", "build_document", "figure_suffixes", "write_report"]

# The report's sections, in order; each returns None when the run has nothing for it.
SECTIONS: tuple[Callable[[Context], Section | None], ...] = (
    training_section,
    comparison_section,
    speculation_section,
    setup_section,
)
# The headline cards, in this order (by label prefix), whatever order they were found in.
CARD_ORDER = ("Next-call", "Best predictor", "Simulated", "Tool-name", "Validation")


def notes_section(data: RunData) -> Section | None:
    if not data.warnings:
        return None
    notes = Section("notes", "Inputs skipped")
    notes.add(Para("; ".join(code(w) for w in data.warnings[:30]), muted=True))
    return notes


def subtitle(data: RunData) -> str:
    found = [
        count(len(items), noun)
        for items, noun in (
            (data.trainings, "training run"),
            (data.comparisons, "comparison"),
            (data.evals, "evaluation"),
            (data.replays, "speculation replay"),
        )
        if items
    ]
    return f"Run directory {code(str(data.run_dir))}: " + ", ".join(found) + "."


def ordered_cards(cards: list[Card]) -> Cards | None:
    rank = {c.label: next((i for i, o in enumerate(CARD_ORDER) if c.label.startswith(o)), 9) for c in cards}
    return Cards(sorted(cards, key=lambda c: rank[c.label])) if cards else None


def build_document(
    data: RunData, figures_dir: Path, title: str | None = None
) -> tuple[Document, list[F.FigureFile]]:
    ctx = Context(data, figures_dir)
    sections = [s for s in (section(ctx) for section in SECTIONS) if s is not None]
    notes = notes_section(data)  # after every section: they add what they skipped
    if notes is not None:
        sections.append(notes)
    document = Document(
        title or f"specdecode report — {data.run_dir.resolve().name}",
        subtitle(data),
        ordered_cards(ctx.cards),
        sections,
    )
    return document, ctx.files


def write_report(run_dir: Path, out: Path | None = None, title: str | None = None) -> tuple[Path, Path]:
    """Scan ``run_dir`` and write ``report.md``, ``report.html`` and ``figures/`` under ``out``
    (default ``run_dir``); return the paths of the Markdown and HTML files."""
    from specdecode.report.html import render_html
    from specdecode.report.markdown import render_markdown

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("no such run directory", run_dir)
    data = collect(run_dir)
    if data.empty:
        message = (
            "nothing to report: no training_curves.json/training_summary.json, X.summary.json or "
            "replay summary.json found"
        )
        if data.warnings:  # name what was there but unreadable, on the one error line
            message += " (" + "; ".join(" ".join(w.split()) for w in data.warnings[:5]) + ")"
        raise InputError(message, run_dir)
    out = Path(out) if out is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    document, _ = build_document(data, out / "figures", title)
    md_path, html_path = out / "report.md", out / "report.html"
    write_text(md_path, render_markdown(document, out))
    write_text(html_path, render_html(document))
    return md_path, html_path
