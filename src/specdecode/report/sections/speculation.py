"""The speculation section: every predictor's hit rates and simulated speed-up, paired tests,
breakdowns, one trace's timeline, the speed-up sweep, wasted calls, the launch-policy frontier,
calibration, speculator latency and example steps of each replay."""

from __future__ import annotations

from specdecode.report import figures as F
from specdecode.report.collect import Replay
from specdecode.report.context import Context
from specdecode.report.document import Block, Card, Heading, Para, Section, Table
from specdecode.report.format import call_text, code, figure_suffixes, num, number, pct, pvalue, seconds_text
from specdecode.results import ReplayRow, ReplaySummary, TimelineRow
from specdecode.results.replay import Reliability

EXAMPLES = 6


def intro(ctx: Context, replay: Replay) -> Para:
    s = replay.summary
    model = s.latency_model
    lat = (
        f"actor think time {code(str(model.actor if model and model.actor else '?'))}, "
        f"tool latency {code(str(model.tool if model and model.tool else '?'))}"
    )
    if model and model.per_tool:
        lat += " (" + ", ".join(f"{n} {code(d)}" for n, d in model.per_tool.items()) + ")"
    steps, traces = (v if v is not None else "?" for v in (s.steps, s.traces))
    return Para(
        f"{steps} steps of {traces} traces replayed from {code(ctx.rel(replay.dir))}: "
        f"each predictor sees the gold prefix and guesses the next call (top {s.k or 3}); a guess counts "
        f"when it matches by the {code(str(s.matcher or '?'))} matcher. "
        f"Simulated with {lat}; only "
        "read-only tools are pre-run."
    )


def predictor_table(s: ReplaySummary) -> Table:
    k = s.k or 3
    rows = [
        [
            f"**{name}**",
            str(p.steps if p.steps is not None else "–"),
            pct(p.rate("hit_at_1")),
            pct(p.rate("hit_at_k")),
            pct(p.rate("name_hit_at_1")),
            num(p.speedup, 3, "×"),
            num(p.bound, 3, "×"),
            str(p.wasted_calls if p.wasted_calls is not None else "–"),
            seconds_text(p.latency.p50 if p.latency else None),
        ]
        for name, p in s.results.items()
    ]
    return Table(
        [
            "predictor",
            "steps",
            "hit@1",
            f"hit@{k}",
            "name hit@1",
            "speed-up",
            "bound",
            "wasted",
            "latency p50",
        ],
        rows,
        caption="hit@1/hit@k: name and arguments (the headline); name hit@1: the tool name only. "
        "Speed-up "
        "launches the top guess; the bound is 1/(1−h·f) for this replay's hit rate h and tool-time "
        "fraction f.",
    )


def cards(s: ReplaySummary) -> list[Card]:
    out = []
    best, fastest = s.best(), s.fastest()
    if best:
        p = s.results[best]
        out.append(
            Card(
                "Best predictor hit@1",
                pct(p.rate("hit_at_1"), ci=False),
                f"{best} · name + arguments · name only {pct(p.name_hit_at_1, ci=False)}",
            )
        )
    if fastest:
        p = s.results[fastest]
        out.append(
            Card(
                "Simulated speed-up",
                num(p.speedup, 2, "×"),
                f"{fastest} · bound {num(p.bound, 2, '×')} "
                f"at f = {pct(p.simulation.tool_fraction if p.simulation else None, ci=False)}",
                "good" if (number(p.speedup) or 1) > 1.0 else "neutral",
            )
        )
    return out


def paired_table(s: ReplaySummary) -> Table | None:
    rows = []
    for pair, tests in s.paired.items():
        if "hit_at_1" not in tests or not tests["hit_at_1"].model_fields_set:
            continue
        t1, tn = tests["hit_at_1"], tests.get("name_hit_at_1")
        shown = [str(v if v is not None else "–") for v in (t1.wins, t1.ties, t1.losses)]
        rows.append([pair, " / ".join(shown), pvalue(t1.mcnemar_p), pvalue(tn.mcnemar_p if tn else None)])
    if not rows:
        return None
    return Table(
        ["pair (B vs A)", "hit@1 wins / ties / losses", "McNemar p, hit@1", "McNemar p, name hit@1"],
        rows,
        caption="Paired on the same steps: wins are steps B got and A missed.",
    )


def breakdown_figures(ctx: Context, s: ReplaySummary, suffix: str) -> list[Block | None]:
    panels = [
        (xlabel, {n: p.breakdown(group) for n, p in s.results.items()})
        for group, xlabel in (("per_level", "GAIA level"), ("per_tool", "gold tool"))
    ]
    series = {n: p.breakdown("per_step_index") for n, p in s.results.items()}
    return [
        Heading("By level, tool and step index"),
        ctx.figure(
            F.breakdown_bars(panels, "hit@1 (name + arguments) by level and by tool"),
            f"spec_by_group{suffix}",
            "Name + arguments hit@1 of every predictor by GAIA level and by the gold tool, 95 % intervals.",
        ),
        ctx.figure(
            F.breakdown_lines(series, "hit@1 by step index", "step index in the trace"),
            f"spec_by_step{suffix}",
            "Name + arguments hit@1 by the position of the call in its trace.",
        ),
    ]


def pick_trace(rows: list[TimelineRow], predictor: str) -> TimelineRow | None:
    """The trace whose picture shows most: time saved, hits and misses both, a few steps."""
    mine = sorted((r for r in rows if r.predictor == predictor), key=lambda r: r.id)
    return max(mine, key=TimelineRow.interest) if mine else None


def timeline_figure(ctx: Context, replay: Replay, predictor: str, suffix: str) -> Block | None:
    trace = pick_trace(replay.timeline, predictor)
    if trace is None:
        ctx.data.warnings.append(
            f"{replay.dir}: no simulated trace of {predictor} (timeline.jsonl, written by replay since "
            "schema 1): the timeline figure is left out"
        )
        return None
    saved = trace.baseline - trace.speculative
    return ctx.figure(
        F.timeline_gantt(trace),
        f"timeline{suffix}",
        f"Trace {code(trace.id)} with the {predictor} speculator: top lane as the agent "
        f"runs today, bottom lane with speculation ({trace.baseline:.1f} s → "
        f"{trace.speculative:.1f} s, "
        f"{saved:.1f} s saved). A hit lets the tool run while the actor is still thinking.",
    )


def simulation_figures(ctx: Context, s: ReplaySummary, suffix: str) -> list[Block | None]:
    k = s.k or 3
    return [
        ctx.figure(
            F.speedup_sweep(s.results),
            f"speedup_sweep{suffix}",
            "Tool latencies rescaled so that tools take a fraction f of the time (actor and speculator "
            "times and hits unchanged); dashed: the bound 1/(1−h·f); ◆: this replay.",
        ),
        ctx.figure(
            F.wasted_calls(s.results, k),
            f"wasted_calls{suffix}",
            "Speculative calls whose result was not used, per step, launching the top guess or all k "
            "guesses.",
        ),
        ctx.figure(
            F.launch_frontier(s.results),
            f"launch_frontier{suffix}",
            "The launch policy swept over λ: a candidate is launched when P(c) × expected hidden seconds "
            "≥ λ × the cost of a wasted call (up to k per step). Up and to the left is better: more time "
            "saved for fewer wasted calls. A predictor without probabilities launches only at λ = 0.",
        ),
    ]


def reliability_figure(ctx: Context, s: ReplaySummary, suffix: str) -> Block | None:
    diagrams: dict[str, Reliability] = {}
    for name, p in s.results.items():
        if p.reliability is not None:
            diagrams[f"{name} (test)"] = p.reliability
        if p.calibration is not None and p.calibration.reliability is not None:
            diagrams[f"{name} (validation, every draft)"] = p.calibration.reliability
    return ctx.figure(
        F.reliability_diagrams(diagrams),
        f"reliability{suffix}",
        "Each predictor's probability for its top candidate against how often it was the actor's "
        "call (test steps), and verify's calibration fit on the validation split (every draft). "
        "ECE: expected calibration error.",
    )


def gate_paras(s: ReplaySummary) -> list[Para]:
    """Per calibrating predictor: whether its model's scores beat the table's ranking on validation."""
    out = []
    for name, p in s.results.items():
        g = p.calibration.versus_table if p.calibration else None
        if g is None:
            continue
        record = f"{g.wins} wins / {g.ties} ties / {g.losses} losses, McNemar p = {pvalue(g.mcnemar_p)}"
        verdict = (
            "its model's scores rank the drafts"
            if g.model_chosen
            else "so it answers with the table's own calls and probabilities and runs no model"
        )
        out.append(
            Para(
                f"**{name}** on the validation split, its best fit with the model's scores against "
                f"the table's own ranking (hit@1): {record} (the model is used when p < {num(g.gate, 2)} "
                f"with more wins than losses): {verdict}."
            )
        )
    return out


def latency_figure(ctx: Context, replay: Replay, suffix: str) -> Block | None:
    samples = {n: [r.latency for r in replay.rows if r.predictor == n] for n in replay.predictors}
    for name, entry in replay.latency.records.items():
        if entry.cached_prefix:
            samples[f"{name} (batch 1, cached prefix)"] = list(entry.cached_prefix)
    return ctx.figure(
        F.latency_distribution(samples, "Speculator latency"),
        f"speculator_latency{suffix}",
        "Seconds per prediction as measured during the replay (model predictors answer in batches; "
        "batch-1 timings with the cached prompt prefix where measured).",
    )


def _guess_cell(row: ReplayRow | None) -> str:
    if row is None:
        return "–"
    mark = "✓" if row.hit_at_1 else ("≈" if row.name_hit_at_1 else "✗")
    return f"{mark} {code(call_text(row.pred_calls[0], 56))}" if row.pred_calls else f"{mark} no guess"


def example_blocks(replay: Replay) -> list[Block | None]:
    """Steps where the predictors disagree, best first: every predictor's top guess."""
    by_step: dict[tuple[str, int], dict[str, ReplayRow]] = {}
    for row in replay.rows:
        by_step.setdefault((row.id, row.step), {})[row.predictor] = row
    scored = sorted(
        by_step.items(),
        key=lambda kv: (
            -len({r.hit_at_1 for r in kv[1].values()}) * 10 - sum(r.hit_at_1 for r in kv[1].values())
        ),
    )
    chosen = scored[:EXAMPLES]
    if not chosen:
        return []
    predictors = replay.predictors
    rows = []
    for (trace_id, step), preds in chosen:
        gold = next((r.gold_call for r in preds.values() if r.gold_call), None)
        cells = [f"{code(trace_id[:8])} #{step}", code(call_text(gold, 56))]
        rows.append(cells + [_guess_cell(preds.get(name)) for name in predictors])
    return [
        Heading("Example steps"),
        Table(
            ["step", "gold", *predictors],
            rows,
            align="l" * (2 + len(predictors)),
            wide=True,
            caption="Top guess of every predictor: ✓ hit, ≈ right tool only, ✗ miss.",
        ),
    ]


def replay_blocks(
    ctx: Context, replay: Replay, suffix: str, multiple: bool, first: bool
) -> list[Block | None]:
    s = replay.summary
    head: list[Block | None] = [
        Heading(f"Replay {code(ctx.rel(replay.dir))}") if multiple else None,
        intro(ctx, replay),
    ]
    if not s.results:
        return [*head, Para("No predictor results in this replay.", muted=True)]
    if first:
        ctx.cards.extend(cards(s))
    chosen = s.fastest() or s.best() or replay.predictors[-1]
    return [
        *head,
        predictor_table(s),
        ctx.figure(
            F.predictor_hits(s.results, s.k or 3),
            f"predictor_hits{suffix}",
            "Every predictor on the same steps, 95 % bootstrap intervals.",
        ),
        paired_table(s),
        *breakdown_figures(ctx, s, suffix),
        Heading("Simulated time"),
        timeline_figure(ctx, replay, chosen, suffix),
        *simulation_figures(ctx, s, suffix),
        reliability_figure(ctx, s, suffix),
        *gate_paras(s),
        latency_figure(ctx, replay, suffix),
        *example_blocks(replay),
    ]


def speculation_section(ctx: Context) -> Section | None:
    replays = ctx.data.replays
    if not replays:
        return None
    section = Section("speculation", "Speculation")
    suffixes = figure_suffixes([r.dir.name for r in replays])
    for i, (replay, suffix) in enumerate(zip(replays, suffixes)):
        section.add(*replay_blocks(ctx, replay, suffix, multiple=len(replays) > 1, first=i == 0))
    return section
