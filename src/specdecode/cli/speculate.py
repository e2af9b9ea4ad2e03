"""``specdecode speculate fit`` and ``speculate replay``: wiring only; the work is in
specdecode.speculate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from specdecode.cli._common import console, done, normalize_token

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
        Path, typer.Option("--out", "-o", help="Directory for frequency.json and pattern.json.")
    ] = Path("predictors"),
) -> None:
    """Fit the frequency and pattern (previous tools → next tool, learned arguments) tables."""
    from specdecode.speculate.run import fit

    predictors = fit(train_traces, out)
    done(f"fitted {', '.join(predictors)} → {out}/")


def _pct(summary: dict, key: str) -> str:
    r = summary["rates"][key]
    if r["mean"] is None:
        return "–"
    return f"{100 * r['mean']:.1f} [{100 * r['ci95'][0]:.0f}, {100 * r['ci95'][1]:.0f}]"


@speculate_app.command("replay")
def replay_cmd(
    traces: Annotated[
        Path, typer.Option("--traces", help="Gold traces to replay (trace JSONL).", show_default=False)
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output directory: steps.jsonl, latency.json, summary.json.")
    ],
    predictor: Annotated[
        list[str],
        typer.Option(
            "--predictor",
            help="frequency | pattern | model (base, and lora with --lora-dir) | base | lora | hybrid; "
            "repeat.",
        ),
    ] = ["frequency", "pattern"],  # noqa: B006 - typer needs a list default
    registry: Annotated[
        str, typer.Option("--registry", help="Tool registry: tools4, tools17 or a file.")
    ] = "tools4",
    fitted: Annotated[
        Path | None, typer.Option("--fitted", help="Directory written by `speculate fit` (tables).")
    ] = None,
    base_model: Annotated[
        str | None,
        typer.Option("--base-model", help="Speculator base model: HF id, local dir, .gguf or smollm2-135m."),
    ] = None,
    lora_dir: Annotated[str | None, typer.Option("--lora-dir", help="The speculator's LoRA adapter.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="hf, vllm or openai.")] = "hf",
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Server URL for --backend openai.")
    ] = None,
    dtype: Annotated[
        str, typer.Option("--dtype", help="auto, float32, bfloat16, float16 (hf, vllm).")
    ] = "auto",
    k: Annotated[
        int,
        typer.Option(
            "--k", min=1, help="Candidates per step (hit@k; the simulation reports top-1 and all k launched)."
        ),
    ] = 3,
    constrained: Annotated[
        bool,
        typer.Option(
            "--constrained/--unconstrained",
            help="Decode model answers against the JSON schema of one call among the offered tools.",
        ),
    ] = False,
    matcher: Annotated[
        str, typer.Option("--matcher", help="When a guess counts: exact, normalised or jaccard.")
    ] = "normalised",
    threshold: Annotated[
        float, typer.Option("--threshold", help="Token Jaccard threshold (--matcher jaccard).")
    ] = 0.8,
    tool_latency: Annotated[
        list[str] | None,
        typer.Option(
            "--tool-latency",
            help="Tool latency: fixed:S, uniform:A,B, lognormal:MU,SIGMA; NAME=DIST for one tool; repeat. "
            "Trace fields tool_seconds win when present. [default: fixed:1.0]",
        ),
    ] = None,
    actor_latency: Annotated[
        str | None,
        typer.Option("--actor-latency", help="Actor think time per step (same forms). [default: fixed:2.0]"),
    ] = None,
    speculator_latency: Annotated[
        list[str] | None,
        typer.Option(
            "--speculator-latency",
            help="Give the speculator latency instead of measuring it: DIST or NAME=DIST; repeat.",
        ),
    ] = None,
    latency_file: Annotated[
        Path | None, typer.Option("--latency-file", help="YAML with actor / tool / speculator distributions.")
    ] = None,
    ignore_trace_times: Annotated[
        bool,
        typer.Option("--ignore-trace-times", help="Draw actor and tool times even where traces carry them."),
    ] = False,
    latency_samples: Annotated[
        int,
        typer.Option(
            "--latency-samples", help="Steps timed at batch 1 per model predictor (cached prefix and not)."
        ),
    ] = 8,
    cost_per_call: Annotated[float, typer.Option("--cost-per-call", help="Cost of one wasted call.")] = 1.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts per generate call.")] = 16,
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", help="Tokens per next-call answer.")
    ] = 96,
    tool_style: Annotated[
        str, typer.Option("--tool-style", help="compact or json tool listing.")
    ] = "compact",
    samples: Annotated[
        int | None,
        typer.Option("--samples", help="Sampled answers per step for model top-k. [default: 2 x (k - 1)]"),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N traces.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of latency draws and sampling.")] = 0,
) -> None:
    """Replay gold traces step by step: hit@1/hit@k per predictor, paired tests, simulated speed-up."""
    from specdecode.errors import InputError
    from specdecode.prompts import PromptOptions
    from specdecode.registry import load_registry
    from specdecode.speculate.match import MATCHERS
    from specdecode.speculate.predictors.model import adapter_form
    from specdecode.speculate.replay import ReplaySettings
    from specdecode.speculate.run import build_predictors, expand_names, latency_settings, run_replay

    if matcher not in (*MATCHERS, "normalized"):
        raise InputError(f"--matcher: choose {', '.join(MATCHERS)}")
    reg = load_registry(registry)
    latency, given = latency_settings(
        actor_latency, tool_latency, speculator_latency, latency_file, not ignore_trace_times, seed
    )
    names = expand_names(predictor, lora_dir is not None)
    engine = None
    if any(n in ("base", "lora", "hybrid") for n in names):
        if not base_model:
            raise InputError("model predictors (model, base, lora, hybrid) need --base-model")
        from specdecode.evaluate.backends import make_backend

        engine = make_backend(backend, base_model, lora_dir, base_url=base_url, dtype=dtype)
    predictors = build_predictors(
        names,
        fitted,
        engine,
        constrained=constrained,
        options=PromptOptions(tool_style=tool_style),  # type: ignore[arg-type]
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        seed=seed,
        form=adapter_form(lora_dir),
        samples=samples,
    )
    settings = ReplaySettings(
        k=k,
        matcher=matcher,
        threshold=threshold,
        latency=latency,
        speculator_latency=given,
        latency_samples=latency_samples,
        cost_per_call=cost_per_call,
    )
    summary = run_replay(traces, reg, predictors, out, settings, limit)
    table = Table(title=f"{summary['steps']} steps of {summary['traces']} traces, k={k}, matcher {matcher}")
    for column in ("predictor", "hit@1 %", f"hit@{k} %", "name hit@1 %", "speed-up", "bound", "wasted"):
        table.add_column(column, justify="left" if column == "predictor" else "right")
    for name in predictors:
        s = summary[name]
        table.add_row(
            name,
            _pct(s, "hit_at_1"),
            _pct(s, "hit_at_k"),
            _pct(s, "name_hit_at_1"),
            f"{s['speedup']:.3f}",
            f"{s['bound']:.3f}",
            str(s["wasted_calls"]),
        )
    console.print(table)
    done(f"steps → {out / 'steps.jsonl'}, summary → {out / 'summary.json'}")
