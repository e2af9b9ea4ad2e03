"""The report as a small tree of blocks, rendered twice: to Markdown (``markdown.py``) and to one
self-contained HTML page (``html.py``). Text in blocks may use two inline marks: ``code`` in
backticks and **bold**."""

from __future__ import annotations

from dataclasses import dataclass, field

from specdecode.report.figures import FigureFile


@dataclass
class Para:
    text: str
    muted: bool = False


@dataclass
class Heading:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    align: str = ""  # one letter per column: l, r or c (default: first l, the rest r)
    caption: str | None = None
    wide: bool = False  # monospace-heavy cells (calls): smaller type, wraps

    def alignment(self) -> str:
        return (self.align or "l" + "r" * (len(self.header) - 1)).ljust(len(self.header), "r")


@dataclass
class Fig:
    file: FigureFile
    caption: str


@dataclass
class Card:
    label: str
    value: str
    note: str = ""
    tone: str = "neutral"  # good | bad | neutral


@dataclass
class Cards:
    items: list[Card]


Block = Para | Heading | Table | Fig | Cards


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block | None) -> None:
        self.blocks.extend(b for b in blocks if b is not None)


@dataclass
class Document:
    title: str
    subtitle: str
    summary: Cards | None
    sections: list[Section]
