"""The report as Markdown: the same sections as the HTML page, figures linked from ``figures/``."""

from __future__ import annotations

import os
from pathlib import Path

from specdecode.report.document import Cards, Document, Fig, Heading, Para, Table


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(table: Table) -> list[str]:
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(_cell(h) for h in table.header) + " |",
        "|" + "|".join(marks.get(a, "---") for a in table.alignment()) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    if table.caption:
        lines += ["", f"*{table.caption}*"]
    return lines


def _cards(cards: Cards) -> list[str]:
    return [f"- **{c.label}: {c.value}**" + (f" — {c.note}" if c.note else "") for c in cards.items]


def render_markdown(document: Document, out_dir: Path) -> str:
    """Markdown text; figure paths are relative to ``out_dir`` (where report.md lives)."""
    lines = [f"# {document.title}", "", document.subtitle, ""]
    if document.summary and document.summary.items:
        lines += ["## At a glance", "", *_cards(document.summary), ""]
    for section in document.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Para):
                lines += [f"*{block.text}*" if block.muted else block.text, ""]
            elif isinstance(block, Heading):
                lines += [f"### {block.text}", ""]
            elif isinstance(block, Table):
                lines += [*_table(block), ""]
            elif isinstance(block, Fig):
                png = Path(os.path.relpath(block.file.png, out_dir)).as_posix()
                svg = Path(os.path.relpath(block.file.svg, out_dir)).as_posix()
                lines += [f"![{block.file.name}]({png})", "", f"*{block.caption}* ([SVG]({svg}))", ""]
            elif isinstance(block, Cards):
                lines += [*_cards(block), ""]
    return "\n".join(lines).rstrip() + "\n"
