"""``specdecode demo``: the whole pipeline offline on the embedded model."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from specdecode.cli._common import console, done, guard, settings_command
from specdecode.settings import DemoSettings

demo_app = typer.Typer()


@settings_command(demo_app, "demo", DemoSettings)
def demo_cmd(settings: DemoSettings) -> None:
    """Run the whole pipeline offline on the embedded model and write a report.

    Stages: synthetic data → level split → chat conversion → LoRA training of SmolLM2-135M →
    base-vs-LoRA comparison (next-call and trace modes) → speculation replay of every predictor →
    a live agent with and without the executor → report.html. Rerunning reuses finished stages
    (each is keyed by its inputs and settings). About 8 minutes on 2 CPU cores.
    """
    import json

    from rich.table import Table

    from specdecode.demo import headlines, run_demo

    guard(trees={"--out": settings.out})
    started = time.time()
    summary = run_demo(
        settings.out, n=settings.n, seed=settings.seed, max_steps=settings.max_steps, form=settings.form
    )
    stages = settings.out / "stages"
    results = {p.stem: json.loads(p.read_text())["result"] for p in sorted(stages.glob("*.json"), key=_order)}
    table = Table(title=f"specdecode demo — {time.time() - started:.0f} s")
    for column in ("stage", "time", "result"):
        table.add_column(column)
    for row in headlines(results):
        table.add_row(*row)
    console.print(table)
    done(f"summary → {summary}")
    done(f"report → {settings.out / 'report.html'}  (open it in a browser; Markdown: report.md)")


def _order(path: Path) -> int:
    stages = ["data", "train", "compare", "compare_trace", "speculate", "agent"]
    return stages.index(path.stem) if path.stem in stages else len(stages)
