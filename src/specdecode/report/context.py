"""What every section function shares while the report is built: the run's data, where figures
go, and the headline cards collected on the way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from specdecode.report import figures as F
from specdecode.report.collect import RunData
from specdecode.report.document import Card, Fig


@dataclass
class Context:
    data: RunData
    figures_dir: Path
    cards: list[Card] = field(default_factory=list)
    files: list[F.FigureFile] = field(default_factory=list)

    def figure(self, fig: Figure | None, name: str, caption: str) -> Fig | None:
        """Save a figure (PNG and SVG) and return its block; None when there was nothing to draw."""
        if fig is None:
            return None
        file = F.save(fig, name, self.figures_dir)
        self.files.append(file)
        return Fig(file, caption)

    def rel(self, path: Path) -> str:
        """``path`` relative to the run directory (``.`` for the directory itself)."""
        try:
            text = str(path.relative_to(self.data.run_dir))
        except ValueError:
            text = str(path)
        return "." if text in ("", ".") else text
