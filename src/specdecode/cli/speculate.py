"""``specdecode speculate fit`` and ``speculate replay``: wiring only; the work is in
specdecode.speculate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from specdecode.cli._common import (
    console,
    done,
    guard,
    normalize_token,
    registry_file,
    settings_command,
    unknown_tools,
)
from specdecode.settings import ReplayCommandSettings

# the files `speculate replay` writes in --out
REPLAY_FILES = ("steps.jsonl", "summary.json", "latency.json", "fingerprint.json", "calibration.json")

speculate_app = typer.Typer(
    help="Speculation: fit cheap next-call tables, replay traces step by step against every "
    "predictor, simulate the wall-clock saving.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"], "token_normalize_func": normalize_token},
)


@speculate_app.command("fit")
def fit_cmd(
    train_traces: Annotated[Path, typer.Argument(help="Training traces (trace JSONL).", show_default=False)],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for the fitted tables (NAME.json each).")
    ] = Path("predictors"),
    table: Annotated[
        list[str] | None,
        typer.Option("--table", help="Fit only these tables (repeat) [default: every table predictor]."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Do not print the argument plan.")] = False,
) -> None:
    """Fit the table predictors: frequency, pattern (previous tools → next tool, arguments from
    sources chosen by cross-validation on these traces only) and its ablations. Prints which
    source fills each argument of each tool, and the held-out accuracy that chose it."""
    from specdecode.speculate.predictors import registry
    from specdecode.speculate.run import fit

    tables = table or registry.names("table")
    guard(
        inputs=[train_traces],
        files={f"--out ({name}.json)": out / f"{name}.json" for name in tables},
        folders={"--out": out},
    )
    predictors = fit(train_traces, out, table)
    pattern = predictors.get("pattern")
    if pattern is not None and not quiet:
        for line in plan_lines(pattern.explain()):  # type: ignore[attr-defined]
            console.print(line, highlight=False, soft_wrap=True)
    done(f"fitted {', '.join(predictors)} → {out}/")


def plan_lines(plan: dict) -> list[str]:
    """The pattern table's argument plan, a line per tool and previous tool: the call-level choice
    and each argument's best source, with its k-fold held-out accuracy on the training traces."""
    lines = ["pattern: argument sources chosen on held-out folds of the training traces (right / calls)"]
    for tool, contexts in plan.items():
        for ctx, entry in contexts.items():
            after = "any tool" if ctx == "*" else ("the start" if ctx == "<s>" else ctx)
            choice = entry["choice"]
            parts = [f"{arg} ← {sources[0]}" for arg, sources in entry["arguments"].items() if sources]
            detail = (
                "memory (whole argument set)" if choice == "memory" else "; ".join(parts) or "no arguments"
            )
            lines.append(f"  {tool} after {after}: {entry['held_out'].get(choice, '?')} — {detail}")
    return lines


@speculate_app.command("predictors")
def predictors_cmd() -> None:
    """List every predictor replay knows: tables (fitted by `speculate fit`) and model predictors."""
    from specdecode.speculate.predictors import registry

    for name in registry.names():
        spec = registry.spec_of(name)
        needs = "fitted tables" if spec.kind == "table" else "--base-model"
        if spec.needs_adapter:
            needs += " --lora-dir"
        if spec.uses_tables:
            needs += " --fitted"
        console.print(
            f"{name:15s} {spec.kind:6s} {spec.help} [needs {needs}]",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def parse_costs(specs: list[str] | None) -> dict[str, float]:
    """``NAME=C`` flags as tool → cost of a wasted call (one-line error otherwise)."""
    import math

    from specdecode.errors import InputError

    out = {}
    for spec in specs or []:
        name, eq, value = spec.partition("=")
        try:
            cost = float(value)
        except ValueError:
            cost = math.nan
        if not eq or not name.strip() or not math.isfinite(cost) or cost < 0:
            raise InputError(f"--tool-cost: expected NAME=C with C a number >= 0, got {spec!r}")
        out[name.strip()] = cost
    return out


@settings_command(speculate_app, "replay", ReplayCommandSettings)
def replay_cmd(settings: ReplayCommandSettings) -> None:
    """Replay gold traces step by step: hit@1/hit@k per predictor, paired tests, simulated speed-up."""
    from specdecode.errors import InputError
    from specdecode.jsonl import read_records
    from specdecode.models import adapter_form
    from specdecode.prompts import PromptOptions
    from specdecode.records import TraceRecord
    from specdecode.registry import load_registry
    from specdecode.speculate.predictors import registry
    from specdecode.speculate.replay import ReplaySettings
    from specdecode.speculate.run import build_predictors, expand_names, latency_settings, run_replay

    s = settings
    names = expand_names(s.predictor, s.lora_dir is not None)
    tables = [n for n in names if registry.spec_of(n).kind == "table"]
    tables += [t for n in names for t in registry.spec_of(n).uses_tables if t not in tables]
    guard(  # before any model loads
        inputs=[
            s.traces,
            s.val_traces,
            s.latency_file,
            registry_file(s.registry),
            *(s.fitted / f"{t}.json" for t in tables if s.fitted is not None),
        ],
        files={f"--out ({name})": s.out / name for name in REPLAY_FILES},
        folders={"--out": s.out},
    )
    reg = load_registry(s.registry)
    latency, given = latency_settings(
        s.actor_latency,
        s.tool_latency,
        s.speculator_latency,
        s.latency_file,
        not s.ignore_trace_times,
        s.seed,
    )
    traces = read_records(s.traces, TraceRecord)
    unknown_tools(s.traces, traces, reg, hint=" (never read-only: not speculated)")
    engine = None
    model_names = [n for n in names if registry.spec_of(n).kind == "model"]
    if model_names:
        if not s.base_model:
            raise InputError(f"model predictors ({', '.join(model_names)}) need --base-model")
        from specdecode.evaluate.backends import make_backend

        engine = make_backend(s.backend, s.base_model, s.lora_dir, base_url=s.base_url, dtype=s.dtype)
    predictors = build_predictors(
        names,
        s.fitted,
        engine,
        constrained=s.constrained,
        options=PromptOptions(tool_style=s.tool_style),
        batch_size=s.batch_size,
        max_new_tokens=s.max_new_tokens,
        seed=s.seed,
        form=adapter_form(s.lora_dir),
        samples=s.samples,
    )
    replay_settings = ReplaySettings(
        k=s.k,
        matcher=s.matcher,
        threshold=s.threshold,
        latency=latency,
        speculator_latency=given,
        latency_samples=s.latency_samples,
        cost_per_call=s.cost_per_call,
        costs=parse_costs(s.tool_cost),
    )
    from specdecode.report.format import rate_text
    from specdecode.results import ReplaySummary

    summary = ReplaySummary.model_validate(
        run_replay(traces, reg, predictors, s.out, replay_settings, s.limit, s.val_traces)
    )
    k, matcher, out = s.k, s.matcher, s.out
    table = Table(title=f"{summary.steps} steps of {summary.traces} traces, k={k}, matcher {matcher}")
    for column in ("predictor", "hit@1 %", f"hit@{k} %", "name hit@1 %", "speed-up", "bound", "wasted"):
        table.add_column(column, justify="left" if column == "predictor" else "right")
    for name, p in summary.results.items():
        rates = [
            rate_text(p.rate(key), unit="", ci_digits=0) for key in ("hit_at_1", "hit_at_k", "name_hit_at_1")
        ]
        table.add_row(name, *rates, f"{p.speedup:.3f}", f"{p.bound:.3f}", str(p.wasted_calls))
    console.print(table)
    done(f"steps → {out / 'steps.jsonl'}, summary → {out / 'summary.json'}")
