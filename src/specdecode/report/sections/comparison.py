"""The base-vs-adapter section: headline rates with paired tests, where the hits are, the
first-tool confusion, failure modes and example steps of each comparison; one model's rates for
each evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from specdecode.evaluate.metrics import breakdown, failure_modes
from specdecode.report import figures as F
from specdecode.report.collect import Evaluation, Results
from specdecode.report.context import Context
from specdecode.report.document import Block, Card, Heading, Para, Section, Table
from specdecode.report.format import call_text, code, figure_suffixes, num, number, pct, pvalue, share
from specdecode.results import Answer, CompareRow, CompareSummary, EvalRow, Rate

METRIC_LABELS = {
    "first_call_exact": "next call, name + arguments",
    "first_call_name": "next tool name",
    "parse_ok": "parsable answer",
    "seq_exact": "tool-name sequence",
    "name_f1": "tool-name F1",
    "args_match": "arguments, where names agree",
    "loop": "loop (lower is better)",
    "over_action": "over-action (lower is better)",
}
HEADLINE = ("first_call_exact", "first_call_name", "parse_ok", "seq_exact", "name_f1", "args_match")
FAILURES = ("no_call", "unknown_tool", "wrong_tool", "wrong_arguments", "loop", "over_action")
GROUPS = (("per_level", "GAIA level"), ("per_tool", "gold tool"))
EXAMPLES = 6


# --------------------------------------------------------------------------- computed from rows
def _step_key(text: str) -> tuple[int, Any]:
    try:
        return (0, int(text))
    except ValueError:
        return (1, text)


def _given(row: CompareRow | EvalRow, name: str) -> Any:
    """A row's field as written, ``?`` when the row has none."""
    return getattr(row, name) if name in row.model_fields_set else "?"


def step_breakdown(rows: Sequence[CompareRow], side: str, metric: str) -> dict[str, Rate]:
    """A metric per step index (``evaluate.metrics.breakdown``) of one side's answers."""
    usable = [
        {"step": row.step, "value": answer.value(metric)}
        for row in rows
        if "step" in row.model_fields_set and "metrics" in (answer := row.side(side)).model_fields_set
    ]
    if not usable:
        return {}
    out = breakdown(usable, lambda r: r["step"], lambda r: r["value"])
    return {k: Rate.model_validate(v) for k, v in sorted(out.items(), key=lambda kv: _step_key(kv[0]))}


def failure_counts(rows: Sequence[CompareRow | EvalRow], prefix: str) -> dict[str, int] | None:
    """``evaluate.metrics.failure_modes`` over the rows as written (None: no rows, or calls that
    are not calls)."""
    try:
        return failure_modes([r.dump() for r in rows], prefix) if rows else None
    except ValidationError:
        return None


# --------------------------------------------------------------------------- blocks
def compare_cards(summary: CompareSummary) -> list[Card]:
    """The headline cards of the first comparison."""
    lora = summary.lora.metrics
    cards = []
    for metric, label, note in (
        ("first_call_exact", "Next-call accuracy", "name + arguments"),
        ("first_call_name", "Tool-name accuracy", "first tool's name"),
    ):
        if metric not in lora:
            continue
        b, a = number(Rate.of(summary.base.rate(metric)).mean), number(lora[metric].mean)
        p = summary.test(metric).mcnemar_p
        better = a is not None and b is not None and a > b and (number(p) or 1) < 0.05
        cards.append(
            Card(
                label,
                pct(lora[metric], ci=False),
                f"{note} · adapter; base {pct(summary.base.rate(metric), ci=False)} · McNemar p {pvalue(p)}",
                "good" if better else "neutral",
            )
        )
    return cards


def intro(ctx: Context, result: Results) -> Para:
    s = result.summary
    n = s.n if s.n is not None else (s.base.n if s.base.n is not None else "?")
    return Para(
        f"{n} examples in {s.mode or '?'} mode "
        f"from {code(ctx.rel(result.path))}; "
        f"judge {code(str(s.judge or '?'))}; backend {code(str(s.backend or '?'))}. "
        "Rates with 95 % bootstrap intervals; wins/ties/losses count the adapter against the base "
        "model on the same examples, with the exact McNemar test on the discordant pairs."
    )


def headline_table(s: CompareSummary) -> Table:
    rows = []
    for metric in (*HEADLINE, "loop", "over_action"):
        bm, lm = s.base.rate(metric), s.lora.rate(metric)
        if bm is None and lm is None:
            continue
        test = s.test(metric)
        wtl = f"{test.wins} / {test.ties} / {test.losses}" if test.counted else "–"
        rows.append([METRIC_LABELS.get(metric, metric), pct(bm), pct(lm), wtl, pvalue(test.mcnemar_p)])
    return Table(["metric", "base", "adapter", "wins / ties / losses", "McNemar p"], rows)


def headline_figure(ctx: Context, s: CompareSummary, suffix: str) -> Block | None:
    return ctx.figure(
        F.metric_bars(
            {"base": s.base.metrics, "adapter": s.lora.metrics},
            [m for m in HEADLINE if m != "args_match"],
            METRIC_LABELS,
        ),
        f"headline_metrics{suffix}",
        "Headline metrics, base vs adapter, with 95 % bootstrap intervals.",
    )


def judge_table(s: CompareSummary) -> Table | None:
    rows = [
        [label, num(agreement.kappa), str(agreement.n if agreement.n is not None else "–")]
        for label, agreement in (
            ("judge agreement", s.judge_agreement),
            ("judge score agreement", s.judge_score_agreement),
        )
        if agreement is not None and agreement.kappa is not None
    ]
    if number(s.kappa) is not None:
        rows.append(["judge agreement", num(s.kappa), "–"])
    return Table(["LLM judge vs deterministic", "Cohen's κ", "n"], rows) if rows else None


def verdicts(s: CompareSummary) -> Para | None:
    if not s.winners:
        return None
    total = sum(s.winners.values()) or 1
    return Para(
        "Per-example verdicts: "
        + ", ".join(f"{k} {v} ({100 * v / total:.0f} %)" for k, v in s.winners.items())
        + "."
    )


def latency_table(s: CompareSummary) -> Table | None:
    rows = [
        [
            name,
            num(lat.mean_s, 2, " s"),
            num(lat.p50_s, 2, " s"),
            num(lat.p95_s, 2, " s"),
            num(side.tokens_per_s, 1),
        ]
        for name, side in (("base", s.base), ("adapter", s.lora))
        if (lat := side.latency) is not None and lat.model_fields_set
    ]
    if not rows:
        return None
    batch = s.lora.latency.max_batch_size if s.lora.latency else None
    return Table(
        ["latency per example", "mean", "p50", "p95", "tokens/s"],
        rows,
        caption=f"Generated in batches of up to {batch}." if batch else None,
    )


def hit_figures(ctx: Context, result: Results, suffix: str) -> list[Block | None]:
    """Hit rate by level, tool and step index, for the exact and the name-only next call."""
    s, blocks = result.summary, []
    for metric in ("first_call_exact", "first_call_name"):
        label = METRIC_LABELS[metric]
        panels = [
            (xlabel, {"base": s.base.groups(group, metric), "adapter": s.lora.groups(group, metric)})
            for group, xlabel in GROUPS
        ]
        steps = {
            name: step_breakdown(result.rows, side, metric)
            for name, side in (("base", "base"), ("adapter", "lora"))
        }
        panels.append(("step index in the trace", steps))
        blocks.append(
            ctx.figure(
                F.breakdown_bars(panels, f"Hit rate — {label}"),
                f"hits_by_group_{metric}{suffix}",
                f"Hit rate ({label}) by GAIA level, by the gold tool and by the position of the call in its "
                "trace; base vs adapter, 95 % intervals, n under each group.",
            )
        )
    return blocks


def confusion_blocks(ctx: Context, s: CompareSummary, suffix: str) -> list[Block | None]:
    tables = {"base": s.base.confusion_first_tool, "adapter": s.lora.confusion_first_tool}
    return [
        Heading("First-tool confusion"),
        ctx.figure(
            F.confusion_heatmaps(tables),
            f"confusion_first_tool{suffix}",
            "Rows: the gold first tool; columns: the predicted one (`<none>`: no call could be read). "
            "The diagonal is right.",
        ),
    ]


def failure_blocks(ctx: Context, counts: dict[str, dict[str, int] | None], suffix: str) -> list[Block | None]:
    kept = {k: v for k, v in counts.items() if v}
    if not kept:
        return []
    names = list(kept)
    rows = [
        [mode.replace("_", " "), *(share(kept[n][mode], kept[n]["examples"]) for n in names)]
        for mode in ("correct", *FAILURES)
    ]
    return [
        Heading("Failure modes"),
        Table(
            ["first call", *names],
            rows,
            caption="Each example's first call is correct or fails in exactly one way (no call, unknown "
            "tool, wrong tool, wrong arguments); loop and over-action look at the whole answer and may "
            "overlap with those.",
        ),
        ctx.figure(
            F.failure_bars(kept, FAILURES), f"failure_modes{suffix}", "How the first call went, per model."
        ),
    ]


def _mark(answer: Answer) -> str:
    return "✓" if answer.flag("first_call_exact") else ("≈" if answer.flag("first_call_name") else "✗")


def _answer_cell(answer: Answer, raw_answer: str | None) -> str:
    if answer.pred_calls:
        return f"{_mark(answer)} {code(call_text(answer.pred_calls[0]))}"
    raw = str(raw_answer or answer.pred_raw or "")
    if raw:
        return f"{_mark(answer)} no call: {code(raw[:70] + ('…' if len(raw) > 70 else ''))}"
    return f"{_mark(answer)} no call"


def pick_examples(rows: Sequence[CompareRow]) -> list[CompareRow]:
    """Up to ``EXAMPLES`` rows, taking in turn: the adapter exact, right tool only, a miss, and one
    the base model got the tool of."""
    buckets: dict[str, list[CompareRow]] = {"exact": [], "name": [], "miss": [], "base": []}
    for row in rows:
        lora, base = row.side("lora"), row.side("base")
        if base.flag("first_call_name"):
            buckets["base"].append(row)
        elif lora.flag("first_call_exact"):
            buckets["exact"].append(row)
        elif lora.flag("first_call_name"):
            buckets["name"].append(row)
        else:
            buckets["miss"].append(row)
    chosen: list[CompareRow] = []
    while len(chosen) < EXAMPLES and any(buckets.values()):
        for key in ("exact", "name", "miss", "base"):
            if buckets[key] and len(chosen) < EXAMPLES:
                chosen.append(buckets[key].pop(0))
    return chosen


def example_blocks(rows: Sequence[CompareRow]) -> list[Block | None]:
    if not rows:
        return []
    table_rows = []
    for row in pick_examples(rows):
        gold = row.gold_calls[0] if row.gold_calls else None
        cells = [
            f"{code(str(_given(row, 'id'))[:8] + '…')} #{_given(row, 'step')} · L{_given(row, 'level')}",
            code(call_text(gold)),
        ]
        cells += [_answer_cell(row.side(side), getattr(row, f"{side}_pred")) for side in ("base", "lora")]
        table_rows.append(cells)
    return [
        Heading("Example steps"),
        Table(
            ["step", "gold", "base", "adapter"],
            table_rows,
            align="llll",
            wide=True,
            caption="✓ name and arguments right · ≈ right tool, other arguments · ✗ wrong tool or no call.",
        ),
    ]


def compare_blocks(ctx: Context, result: Results, suffix: str, multiple: bool) -> list[Block | None]:
    s = result.summary
    rows = result.rows
    return [
        Heading(f"{code(result.name)} — {s.mode or '?'} mode") if multiple else None,
        intro(ctx, result),
        headline_table(s),
        headline_figure(ctx, s, suffix),
        judge_table(s),
        verdicts(s),
        latency_table(s),
        Heading("Where the hits are"),
        *hit_figures(ctx, result, suffix),
        *confusion_blocks(ctx, s, suffix),
        *failure_blocks(
            ctx, {"base": failure_counts(rows, "base_"), "adapter": failure_counts(rows, "lora_")}, suffix
        ),
        *example_blocks(rows),
    ]


def eval_blocks(ctx: Context, result: Evaluation, suffix: str) -> list[Block | None]:
    s = result.summary
    label = "adapter" if s.adapter else "model"
    rows = [[METRIC_LABELS.get(m, m), pct(r)] for m, r in s.metrics.items()]
    return [
        Heading(f"Evaluation {code(result.name)}"),
        Para(
            f"{s.n if s.n is not None else '?'} examples in {s.mode or '?'} mode "
            f"from {code(ctx.rel(result.path))}, {label} only."
        ),
        Table(["metric", label], rows) if rows else None,
        ctx.figure(
            F.breakdown_bars(
                [("GAIA level", {label: s.groups("per_level", "first_call_exact")})],
                "Next call by GAIA level",
            ),
            f"by_level{suffix}",
            "Next call (name + arguments) by GAIA level.",
        ),
        *failure_blocks(ctx, {label: failure_counts(result.rows, "")}, suffix),
    ]


def comparison_section(ctx: Context) -> Section | None:
    data = ctx.data
    if not data.comparisons and not data.evals:
        return None
    section = Section("comparison", "Base model vs adapter")
    ordered = sorted(data.comparisons, key=lambda r: r.summary.mode != "next-call")
    for i, (result, suffix) in enumerate(zip(ordered, figure_suffixes([r.name for r in ordered]))):
        section.add(*compare_blocks(ctx, result, suffix, multiple=len(ordered) > 1))
        if i == 0:
            ctx.cards.extend(compare_cards(result.summary))
    for i, result in enumerate(data.evals):
        section.add(*eval_blocks(ctx, result, f"_eval{i}"))
    return section
