"""``specdecode eval`` and ``specdecode compare``: wiring only; the work is in specdecode.evaluate.run."""

from __future__ import annotations

import typer
from rich.table import Table

from specdecode.cli._common import console, done, guard, registry_file, settings_command
from specdecode.results import CompareSummary, EvalSummary, ModelSummary
from specdecode.settings import CompareSettings, EvalSettings

eval_app = typer.Typer()


def _metric_table(title: str, columns: dict[str, ModelSummary]) -> Table:
    from specdecode.evaluate.metrics import ALL_METRICS
    from specdecode.report.format import rate_text

    table = Table(title=title)
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    for metric in ALL_METRICS:
        cells = [rate_text(s.rate(metric), scale=1, digits=3, ci_digits=3, unit="") for s in columns.values()]
        table.add_row(metric, *cells)
    return table


def _guard_results(settings: EvalSettings) -> None:
    """The results file and its summary may not overwrite the test file (or the registry)."""
    out = settings.output_file
    guard(
        inputs=[settings.test_file, registry_file(settings.registry)],
        files={"--output-file": out, "summary": out.with_suffix(".summary.json")},
    )


@settings_command(eval_app, "eval", EvalSettings)
def eval_cmd(settings: EvalSettings) -> None:
    """Evaluate one model (optionally with an adapter): generate, extract tool calls, score."""
    from specdecode.evaluate.run import run_eval

    _guard_results(settings)
    summary = EvalSummary.model_validate(run_eval(settings))
    label = "lora" if summary.adapter else "base"
    title = f"{summary.n} examples, {settings.mode} mode ({settings.backend})"
    console.print(_metric_table(title, {label: summary}))
    done(f"results → {settings.output_file}, summary → {settings.output_file.with_suffix('.summary.json')}")


@settings_command(eval_app, "compare", CompareSettings)
def compare_cmd(settings: CompareSettings) -> None:
    """Base model against its LoRA adapter on the same examples (one model load), paired statistics."""
    from specdecode.evaluate.run import run_compare

    _guard_results(settings)
    summary = CompareSummary.model_validate(run_compare(settings))
    title = f"{summary.n} examples, {settings.mode} mode ({settings.backend})"
    console.print(_metric_table(title, {"base": summary.base, "lora": summary.lora}))
    table = Table(title="Paired outcomes (LoRA vs base)")
    for column in ("metric", "wins", "ties", "losses", "McNemar p"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for metric, t in summary.paired.items():
        table.add_row(metric, str(t.wins), str(t.ties), str(t.losses), f"{t.mcnemar_p:.3g}")
    console.print(table)
    done(f"results → {settings.output_file}, summary → {settings.output_file.with_suffix('.summary.json')}")
