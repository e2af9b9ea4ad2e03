"""``specdecode demo``: the whole pipeline offline on the embedded model."""

from __future__ import annotations

import time

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
    from rich.table import Table

    from specdecode.demo import headlines, run_demo, stage_results

    guard(trees={"--out": settings.out})
    started = time.time()
    summary = run_demo(
        settings.out, n=settings.n, seed=settings.seed, max_steps=settings.max_steps, form=settings.form
    )
    results = stage_results(settings.out)
    table = Table(title=f"specdecode demo — {time.time() - started:.0f} s")
    for column in ("stage", "time", "result"):
        table.add_column(column)
    for row in headlines(results):
        table.add_row(*row)
    console.print(table)
    done(f"summary → {summary}")
    done(f"report → {settings.out / 'report.html'}  (open it in a browser; Markdown: report.md)")
