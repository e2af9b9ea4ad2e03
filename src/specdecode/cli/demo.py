"""``specdecode demo``: the whole pipeline offline on the embedded model."""

from __future__ import annotations

import typer

from specdecode.cli._common import console, done, settings_command
from specdecode.settings import DemoSettings

demo_app = typer.Typer()


@settings_command(demo_app, "demo", DemoSettings)
def demo_cmd(settings: DemoSettings) -> None:
    """Run the whole pipeline offline on the embedded model and write a report.

    Stages: synthetic data → level split → chat conversion → LoRA training of SmolLM2-135M →
    base-vs-LoRA comparison → speculation. Rerunning reuses finished stages.
    """
    from specdecode.demo import run_demo

    report = run_demo(settings.out, n=settings.n, seed=settings.seed, max_steps=settings.max_steps)
    done(f"demo finished → {report}")
    console.print(report.read_text(encoding="utf-8"), markup=False, highlight=False, soft_wrap=True)
