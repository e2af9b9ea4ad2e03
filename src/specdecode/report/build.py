"""Assemble the report from what ``collect`` found: sections of tables and figures, then
``report.md``, ``report.html`` and ``figures/`` (PNG and SVG of every figure)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from specdecode.errors import InputError
from specdecode.outputs import write_text
from specdecode.report import figures as F
from specdecode.report.collect import (
    Replay,
    Results,
    RunData,
    best_predictor,
    collect,
    failure_counts,
    fastest_predictor,
    setup,
    step_breakdown,
    timeline,
)
from specdecode.report.document import Card, Cards, Document, Fig, Heading, Para, Section, Table

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
EXAMPLES = 6


# --------------------------------------------------------------------------- formatting
def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def pct(rate: Any, ci: bool = True) -> str:
    """``57.6 % [45.5, 68.2]`` from a rate dict (or a bare number)."""
    mean = _num(rate.get("mean")) if isinstance(rate, Mapping) else _num(rate)
    if mean is None:
        return "–"
    text = f"{100 * mean:.1f} %"
    bounds = rate.get("ci95") if isinstance(rate, Mapping) else None
    if ci and isinstance(bounds, (list, tuple)) and len(bounds) == 2 and None not in bounds:
        text += f" [{100 * bounds[0]:.1f}, {100 * bounds[1]:.1f}]"
    return text


def pvalue(p: Any) -> str:
    p = _num(p)
    if p is None:
        return "–"
    if p < 1e-3:
        return f"{p:.1e}"
    return f"{p:.3f}"


def num(value: Any, digits: int = 3, unit: str = "") -> str:
    value = _num(value)
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def call_text(call: Any, limit: int = 90) -> str:
    """``tool(arg="value", …)`` for a call dict."""
    if not isinstance(call, Mapping):
        return "–"
    args = call.get("arguments") or {}
    inner = (
        ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
        if isinstance(args, Mapping)
        else str(args)
    )
    text = f"{call.get('tool_name', '?')}({inner})"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def code(text: str) -> str:
    """Inline code for any text (backticks inside are replaced, never breaking the mark)."""
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


# --------------------------------------------------------------------------- sections


def figure_suffixes(names: list[str]) -> list[str]:
    """File-name suffixes for repeated figures: none for the first result, then the result's own
    name (``headline_metrics_compare_trace.png``), numbered only when names repeat."""
    out: list[str] = []
    for i, name in enumerate(names):
        suffix = "" if i == 0 else "_" + (re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or str(i))
        if suffix in out:
            suffix = f"{suffix}_{i}"
        out.append(suffix)
    return out


class Builder:
    def __init__(self, data: RunData, figures_dir: Path):
        self.data = data
        self.figures_dir = figures_dir
        self.cards: list[Card] = []
        self.files: list[F.FigureFile] = []

    def figure(self, fig: Any, name: str, caption: str) -> Fig | None:
        if fig is None:
            return None
        file = F.save(fig, name, self.figures_dir)
        self.files.append(file)
        return Fig(file, caption)

    def rel(self, path: Path) -> str:
        try:
            text = str(path.relative_to(self.data.run_dir))
        except ValueError:
            text = str(path)
        return "." if text in ("", ".") else text

    # ------------------------------------------------------------------ setup
    def setup_section(self) -> Section:
        info = setup(self.data)
        section = Section("setup", "Setup")
        rows = []
        for label, key in (("models", "models"), ("adapters", "adapters"), ("registry", "registries")):
            for name, where in info[key].items():
                rows.append([label, code(name), where])
                label = ""
        label = "seeds"
        for where, seed in info["seeds"].items():
            rows.append([label, code(seed), where])
            label = ""
        if rows:
            section.add(Table(["", "value", "where"], rows, align="lll"))
        if self.data.data_files:
            section.add(
                Heading("Data files"),
                Table(
                    ["file", "role", "size", "SHA-256"],
                    [
                        [code(f["path"]), f["role"], _size(f["bytes"]), code(f["sha256"])]
                        for f in self.data.data_files
                    ],
                    align="llrl",
                    wide=True,
                ),
            )
        packages = info["packages"]
        machine = info["machine"]
        section.add(
            Heading("Software and machine"),
            Para(
                "Packages installed where this report was written: "
                + " · ".join(f"{name} {code(version)}" for name, version in packages.items())
                + "."
            ),
            Table(
                ["machine", ""],
                [[k, v] for k, v in machine.items()],
                align="ll",
                caption=f"The machine that wrote this report ({info['generated']}); training ran on the "
                "device its summary names.",
            ),
        )
        return section

    # ------------------------------------------------------------------ training
    def training_section(self) -> Section | None:
        if not self.data.trainings:
            return None
        section = Section("training", "Training")
        for i, training in enumerate(self.data.trainings):
            where = self.rel(training.dir)
            if len(self.data.trainings) > 1:
                section.add(Heading(f"Adapter {code(where)}"))
            summary, config = training.summary or {}, training.config or {}
            parts = []
            if config.get("model_name"):
                parts.append(f"base model {code(str(config['model_name']))}")
            if config.get("lora_r"):
                parts.append(f"LoRA r={config['lora_r']}, α={config.get('lora_alpha', '?')}")
            if summary.get("global_step"):
                parts.append(f"{summary['global_step']} optimizer steps")
            if summary.get("train_examples"):
                parts.append(
                    f"{summary['train_examples']} training / {summary.get('val_examples', '?')} "
                    "validation examples"
                )
            if summary.get("seconds"):
                parts.append(
                    f"{summary['seconds']:.0f} s on {summary.get('device', '?')} "
                    f"× {summary.get('world_size', 1)}"
                )
            if parts:
                section.add(Para(f"Adapter {code(where)}: " + "; ".join(parts) + "."))
            if training.curves:
                section.add(
                    self.figure(
                        F.loss_curves(training.curves),
                        f"loss_curves{'' if i == 0 else f'_{i}'}",
                        "Training loss (per logging step) and validation loss (per evaluation); the dotted "
                        "line is the learning-rate schedule.",
                    )
                )
            if summary:
                rows = []
                for label, loss, ppl in (
                    ("before training", summary.get("initial_eval_loss"), None),
                    ("best", summary.get("best_eval_loss"), None),
                    ("after training", summary.get("final_eval_loss"), summary.get("final_eval_perplexity")),
                ):
                    if _num(loss) is not None:
                        rows.append([label, num(loss), num(ppl if ppl is not None else math.exp(loss), 2)])
                if rows:
                    section.add(Table(["validation", "loss", "perplexity"], rows))
                if (
                    training.summary
                    and training.summary.get("initial_eval_loss")
                    and training.summary.get("final_eval_loss")
                ):
                    self.cards.append(
                        Card(
                            "Validation loss",
                            f"{summary['initial_eval_loss']:.2f} → {summary['final_eval_loss']:.2f}",
                            f"{summary.get('global_step', '?')} LoRA steps",
                        )
                    )
        return section

    # ------------------------------------------------------------------ base vs adapter
    def comparison_section(self) -> Section | None:
        if not self.data.comparisons and not self.data.evals:
            return None
        section = Section("comparison", "Base model vs adapter")
        headline_done = False
        ordered = sorted(self.data.comparisons, key=lambda r: r.summary.get("mode") != "next-call")
        for result, suffix in zip(ordered, figure_suffixes([r.name for r in ordered])):
            self.compare_blocks(section, result, suffix, multiple=len(ordered) > 1)
            if not headline_done:
                self.compare_cards(result)
                headline_done = True
        for i, result in enumerate(self.data.evals):
            self.eval_blocks(section, result, f"_eval{i}")
        return section

    def compare_cards(self, result: Results) -> None:
        s = result.summary
        base, lora, paired = (
            s["base"].get("metrics") or {},
            s["lora"].get("metrics") or {},
            s.get("paired") or {},
        )
        for metric, label, note in (
            ("first_call_exact", "Next-call accuracy", "name + arguments"),
            ("first_call_name", "Tool-name accuracy", "first tool's name"),
        ):
            if metric not in lora:
                continue
            b, a = _num((base.get(metric) or {}).get("mean")), _num((lora.get(metric) or {}).get("mean"))
            p = (paired.get(metric) or {}).get("mcnemar_p")
            tone = (
                "good" if a is not None and b is not None and a > b and (_num(p) or 1) < 0.05 else "neutral"
            )
            self.cards.append(
                Card(
                    label,
                    f"{pct(lora[metric], ci=False)}",
                    f"{note} · adapter; base {pct(base.get(metric), ci=False)} · McNemar p {pvalue(p)}",
                    tone,
                )
            )

    def compare_blocks(self, section: Section, result: Results, suffix: str, multiple: bool) -> None:
        s = result.summary
        mode = s.get("mode", "?")
        if multiple:
            section.add(Heading(f"{code(result.name)} — {mode} mode"))
        base, lora = s["base"], s["lora"]
        section.add(
            Para(
                f"{s.get('n', base.get('n', '?'))} examples in {mode} mode "
                f"from {code(self.rel(result.path))}; "
                f"judge {code(str(s.get('judge', '?')))}; backend {code(str(s.get('backend', '?')))}. "
                "Rates with 95 % bootstrap intervals; wins/ties/losses count the adapter against the base "
                "model on the same examples, with the exact McNemar test on the discordant pairs."
            )
        )
        paired = s.get("paired") or {}
        rows = []
        for metric in (*HEADLINE, "loop", "over_action"):
            bm, lm = (base.get("metrics") or {}).get(metric), (lora.get("metrics") or {}).get(metric)
            if bm is None and lm is None:
                continue
            test = paired.get(metric) or {}
            wtl = (
                f"{test['wins']} / {test['ties']} / {test['losses']}"
                if {"wins", "ties", "losses"} <= set(test)
                else "–"
            )
            rows.append(
                [METRIC_LABELS.get(metric, metric), pct(bm), pct(lm), wtl, pvalue(test.get("mcnemar_p"))]
            )
        section.add(Table(["metric", "base", "adapter", "wins / ties / losses", "McNemar p"], rows))
        section.add(
            self.figure(
                F.metric_bars(
                    {"base": base.get("metrics") or {}, "adapter": lora.get("metrics") or {}},
                    [m for m in HEADLINE if m != "args_match"],
                    METRIC_LABELS,
                ),
                f"headline_metrics{suffix}",
                "Headline metrics, base vs adapter, with 95 % bootstrap intervals.",
            )
        )
        judge_rows = []
        for key in ("judge_agreement", "judge_score_agreement"):
            agreement = s.get(key)
            if isinstance(agreement, Mapping) and agreement.get("kappa") is not None:
                judge_rows.append(
                    [key.replace("_", " "), num(agreement.get("kappa")), str(agreement.get("n", "–"))]
                )
        if _num(s.get("kappa")) is not None:
            judge_rows.append(["judge agreement", num(s.get("kappa")), "–"])
        if judge_rows:
            section.add(Table(["LLM judge vs deterministic", "Cohen's κ", "n"], judge_rows))
        winners = s.get("winners")
        if isinstance(winners, Mapping) and winners:
            total = sum(v for v in winners.values() if isinstance(v, int)) or 1
            section.add(
                Para(
                    "Per-example verdicts: "
                    + ", ".join(f"{k} {v} ({100 * v / total:.0f} %)" for k, v in winners.items())
                    + "."
                )
            )
        lat_rows = []
        for name, side in (("base", base), ("adapter", lora)):
            lat = side.get("latency") or {}
            if lat:
                lat_rows.append(
                    [
                        name,
                        num(lat.get("mean_s"), 2, " s"),
                        num(lat.get("p50_s"), 2, " s"),
                        num(lat.get("p95_s"), 2, " s"),
                        num(side.get("tokens_per_s"), 1),
                    ]
                )
        if lat_rows:
            batch = (lora.get("latency") or {}).get("max_batch_size")
            section.add(
                Table(
                    ["latency per example", "mean", "p50", "p95", "tokens/s"],
                    lat_rows,
                    caption=f"Generated in batches of up to {batch}." if batch else None,
                )
            )

        # hit rate by level, tool and step index
        section.add(Heading("Where the hits are"))
        for metric in ("first_call_exact", "first_call_name"):
            label = METRIC_LABELS[metric]
            panels = [
                (
                    xlabel,
                    {
                        "base": (base.get(group) or {}).get(metric) or {},
                        "adapter": (lora.get(group) or {}).get(metric) or {},
                    },
                )
                for group, xlabel in (("per_level", "GAIA level"), ("per_tool", "gold tool"))
            ]
            panels.append(
                (
                    "step index in the trace",
                    {
                        "base": step_breakdown(result.rows, "base_", metric),
                        "adapter": step_breakdown(result.rows, "lora_", metric),
                    },
                )
            )
            section.add(
                self.figure(
                    F.breakdown_bars(panels, f"Hit rate — {label}"),
                    f"hits_by_group_{metric}{suffix}",
                    f"Hit rate ({label}) by GAIA level, by the gold tool and by the position of the call "
                    "in its "
                    "trace; base vs adapter, 95 % intervals, n under each group.",
                )
            )
        tables = {
            "base": base.get("confusion_first_tool") or {},
            "adapter": lora.get("confusion_first_tool") or {},
        }
        section.add(
            Heading("First-tool confusion"),
            self.figure(
                F.confusion_heatmaps(tables),
                f"confusion_first_tool{suffix}",
                "Rows: the gold first tool; columns: the predicted one (`<none>`: no call could be read). "
                "The diagonal is right.",
            ),
        )
        self.failure_blocks(
            section,
            {"base": failure_counts(result.rows, "base_"), "adapter": failure_counts(result.rows, "lora_")},
            suffix,
        )
        self.example_blocks(section, result.rows)

    def eval_blocks(self, section: Section, result: Results, suffix: str) -> None:
        s = result.summary
        section.add(Heading(f"Evaluation {code(result.name)}"))
        label = "adapter" if s.get("adapter") else "model"
        section.add(
            Para(
                f"{s.get('n', '?')} examples in {s.get('mode', '?')} mode "
                f"from {code(self.rel(result.path))}, {label} only."
            )
        )
        rows = [[METRIC_LABELS.get(m, m), pct(r)] for m, r in (s.get("metrics") or {}).items()]
        if rows:
            section.add(Table(["metric", label], rows))
        per_level = (s.get("per_level") or {}).get("first_call_exact") or {}
        section.add(
            self.figure(
                F.breakdown_bars([("GAIA level", {label: per_level})], "Next call by GAIA level"),
                f"by_level{suffix}",
                "Next call (name + arguments) by GAIA level.",
            )
        )
        self.failure_blocks(section, {label: failure_counts(result.rows, "")}, suffix)

    def failure_blocks(self, section: Section, counts: dict[str, dict[str, int] | None], suffix: str) -> None:
        counts = {k: v for k, v in counts.items() if v}
        if not counts:
            return
        section.add(Heading("Failure modes"))
        names = list(counts)
        rows = []
        for mode in ("correct", *FAILURES):
            cells = []
            for name in names:
                c, n = counts[name].get(mode, 0), counts[name].get("examples", 0) or 1
                cells.append(f"{c} ({100 * c / n:.0f} %)")
            rows.append([mode.replace("_", " "), *cells])
        section.add(
            Table(
                ["first call", *names],
                rows,
                caption="Each example's first call is correct or fails in exactly one way (no call, unknown "
                "tool, wrong tool, wrong arguments); loop and over-action look at the whole answer and may "
                "overlap with those.",
            ),
            self.figure(
                F.failure_bars(counts, FAILURES),
                f"failure_modes{suffix}",
                "How the first call went, per model.",
            ),
        )

    def example_blocks(self, section: Section, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        buckets: dict[str, list[dict[str, Any]]] = {"exact": [], "name": [], "miss": [], "base": []}
        for row in rows:
            lm, bm = row.get("lora_metrics") or {}, row.get("base_metrics") or {}
            if bm.get("first_call_name"):
                buckets["base"].append(row)
            elif lm.get("first_call_exact"):
                buckets["exact"].append(row)
            elif lm.get("first_call_name"):
                buckets["name"].append(row)
            else:
                buckets["miss"].append(row)
        chosen: list[dict[str, Any]] = []
        while len(chosen) < EXAMPLES and any(buckets.values()):
            for key in ("exact", "name", "miss", "base"):
                if buckets[key] and len(chosen) < EXAMPLES:
                    chosen.append(buckets[key].pop(0))
        table_rows = []
        for row in chosen:
            gold = (row.get("gold_calls") or [None])[0]
            cells = [
                f"{code(str(row.get('id', '?'))[:8] + '…')} #{row.get('step', '?')} "
                f"· L{row.get('level', '?')}"
            ]
            cells.append(code(call_text(gold)))
            for side in ("base", "lora"):
                pred = row.get(f"{side}_pred_calls") or []
                metrics = row.get(f"{side}_metrics") or {}
                mark = (
                    "✓"
                    if metrics.get("first_call_exact")
                    else ("≈" if metrics.get("first_call_name") else "✗")
                )
                if pred:
                    cells.append(f"{mark} {code(call_text(pred[0]))}")
                else:
                    raw = str(row.get(f"{side}_pred") or row.get(f"{side}_pred_raw") or "")
                    cells.append(
                        f"{mark} no call: {code(raw[:70] + ('…' if len(raw) > 70 else ''))}"
                        if raw
                        else f"{mark} no call"
                    )
            table_rows.append(cells)
        section.add(
            Heading("Example steps"),
            Table(
                ["step", "gold", "base", "adapter"],
                table_rows,
                align="llll",
                wide=True,
                caption="✓ name and arguments right · ≈ right tool, other arguments · "
                "✗ wrong tool or no call.",
            ),
        )

    # ------------------------------------------------------------------ speculation
    def speculation_section(self) -> Section | None:
        if not self.data.replays:
            return None
        section = Section("speculation", "Speculation")
        suffixes = figure_suffixes([r.dir.name for r in self.data.replays])
        for i, (replay, suffix) in enumerate(zip(self.data.replays, suffixes)):
            self.replay_blocks(section, replay, suffix, multiple=len(self.data.replays) > 1, cards=i == 0)
        return section

    def replay_blocks(
        self, section: Section, replay: Replay, suffix: str, multiple: bool, cards: bool
    ) -> None:
        s = replay.summary
        predictors = replay.predictors
        k = int(s.get("k") or 3)
        if multiple:
            section.add(Heading(f"Replay {code(self.rel(replay.dir))}"))
        model = s.get("latency_model") or {}
        lat = (
            f"actor think time {code(str(model.get('actor', '?')))}, "
            f"tool latency {code(str(model.get('tool', '?')))}"
        )
        if model.get("per_tool"):
            lat += " (" + ", ".join(f"{n} {code(str(d))}" for n, d in model["per_tool"].items()) + ")"
        section.add(
            Para(
                f"{s.get('steps', '?')} steps of {s.get('traces', '?')} traces replayed "
                f"from {code(self.rel(replay.dir))}: "
                f"each predictor sees the gold prefix and guesses the next call (top {k}); a guess counts "
                f"when it matches by the {code(str(s.get('matcher', '?')))} matcher. "
                f"Simulated with {lat}; only "
                "read-only tools are pre-run."
            )
        )
        if not predictors:
            section.add(Para("No predictor results in this replay.", muted=True))
            return
        rows = []
        for name in predictors:
            p = s[name]
            rates = p.get("rates") or {}
            rows.append(
                [
                    f"**{name}**",
                    str(p.get("steps", "–")),
                    pct(rates.get("hit_at_1", p.get("hit_at_1"))),
                    pct(rates.get("hit_at_k", p.get("hit_at_k"))),
                    pct(rates.get("name_hit_at_1", p.get("name_hit_at_1"))),
                    num(p.get("speedup"), 3, "×"),
                    num(p.get("bound"), 3, "×"),
                    str(p.get("wasted_calls", "–")),
                    _latency_cell(p),
                ]
            )
        section.add(
            Table(
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
        )
        section.add(
            self.figure(
                F.predictor_hits(s, predictors, k),
                f"predictor_hits{suffix}",
                "Every predictor on the same steps, 95 % bootstrap intervals.",
            )
        )
        best = best_predictor(replay)
        if cards and best:
            p = s[best]
            self.cards.append(
                Card(
                    "Best predictor hit@1",
                    pct((p.get("rates") or {}).get("hit_at_1", p.get("hit_at_1")), ci=False),
                    f"{best} · name + arguments · name only {pct(p.get('name_hit_at_1'), ci=False)}",
                )
            )
        fastest = fastest_predictor(replay)
        if cards and fastest:
            p = s[fastest]
            sim = p.get("simulation") or {}
            self.cards.append(
                Card(
                    "Simulated speed-up",
                    num(p.get("speedup"), 2, "×"),
                    f"{fastest} · bound {num(p.get('bound'), 2, '×')} "
                    f"at f = {pct(sim.get('tool_fraction'), ci=False)}",
                    "good" if (_num(p.get("speedup")) or 1) > 1.0 else "neutral",
                )
            )
        pairs = s.get("paired") or {}
        prows = []
        for pair, tests in pairs.items():
            if not isinstance(tests, Mapping):
                continue
            t1 = tests.get("hit_at_1") or {}
            tn = tests.get("name_hit_at_1") or {}
            if not t1:
                continue
            prows.append(
                [
                    pair,
                    f"{t1.get('wins', '–')} / {t1.get('ties', '–')} / {t1.get('losses', '–')}",
                    pvalue(t1.get("mcnemar_p")),
                    pvalue(tn.get("mcnemar_p")),
                ]
            )
        if prows:
            section.add(
                Table(
                    [
                        "pair (B vs A)",
                        "hit@1 wins / ties / losses",
                        "McNemar p, hit@1",
                        "McNemar p, name hit@1",
                    ],
                    prows,
                    caption="Paired on the same steps: wins are steps B got and A missed.",
                )
            )
        section.add(Heading("By level, tool and step index"))
        panels = [
            (xlabel, {n: ((s[n].get(group) or {}).get("hit_at_1") or {}) for n in predictors})
            for group, xlabel in (("per_level", "GAIA level"), ("per_tool", "gold tool"))
        ]
        section.add(
            self.figure(
                F.breakdown_bars(panels, "hit@1 (name + arguments) by level and by tool"),
                f"spec_by_group{suffix}",
                "Name + arguments hit@1 of every predictor by GAIA level "
                "and by the gold tool, 95 % intervals.",
            )
        )
        series = {n: ((s[n].get("per_step_index") or {}).get("hit_at_1") or {}) for n in predictors}
        section.add(
            self.figure(
                F.breakdown_lines(series, "hit@1 by step index", "step index in the trace"),
                f"spec_by_step{suffix}",
                "Name + arguments hit@1 by the position of the call in its trace.",
            )
        )

        section.add(Heading("Simulated time"))
        chosen = fastest or best or predictors[-1]
        line = timeline(self.data, replay, chosen)
        if line:
            saved = line["baseline"] - line["speculative"]
            section.add(
                self.figure(
                    F.timeline_gantt(line),
                    f"timeline{suffix}",
                    f"Trace {code(line['trace_id'])} with the {chosen} speculator: top lane as the agent "
                    f"runs today, bottom lane with speculation ({line['baseline']:.1f} s → "
                    f"{line['speculative']:.1f} s, "
                    f"{saved:.1f} s saved). A hit lets the tool run while the actor is still thinking.",
                )
            )
        section.add(
            self.figure(
                F.speedup_sweep(s, predictors),
                f"speedup_sweep{suffix}",
                "Tool latencies rescaled so that tools take a fraction f of the time (actor and speculator "
                "times and hits unchanged); dashed: the bound 1/(1−h·f); ◆: this replay.",
            ),
            self.figure(
                F.wasted_calls(s, predictors, k),
                f"wasted_calls{suffix}",
                "Speculative calls whose result was not used, per step, launching the top guess or all k "
                "guesses.",
            ),
        )
        section.add(
            self.figure(
                F.launch_frontier(s, predictors),
                f"launch_frontier{suffix}",
                "The launch policy swept over λ: a candidate is launched when P(c) × expected hidden seconds "
                "≥ λ × the cost of a wasted call (up to k per step). Up and to the left is better: more time "
                "saved for fewer wasted calls. A predictor without probabilities launches only at λ = 0.",
            )
        )
        diagrams = {}
        for name in predictors:
            entry = s.get(name) or {}
            if isinstance(entry.get("reliability"), Mapping):
                diagrams[f"{name} (test)"] = entry["reliability"]
            calibration = entry.get("calibration")
            if isinstance(calibration, Mapping) and isinstance(calibration.get("reliability"), Mapping):
                diagrams[f"{name} (validation, every draft)"] = calibration["reliability"]
        section.add(
            self.figure(
                F.reliability_diagrams(diagrams),
                f"reliability{suffix}",
                "Each predictor's probability for its top candidate against how often it was the actor's "
                "call (test steps), and verify's calibration fit on the validation split (every draft). "
                "ECE: expected calibration error.",
            )
        )
        samples = {n: [r.get("latency") for r in replay.rows if r.get("predictor") == n] for n in predictors}
        for name, entry in replay.latency.items():
            if isinstance(entry, Mapping) and entry.get("cached_prefix"):
                samples[f"{name} (batch 1, cached prefix)"] = list(entry["cached_prefix"])
        section.add(
            self.figure(
                F.latency_distribution(samples, "Speculator latency"),
                f"speculator_latency{suffix}",
                "Seconds per prediction as measured during the replay (model predictors answer in batches; "
                "batch-1 timings with the cached prompt prefix where measured).",
            )
        )
        self.replay_examples(section, replay, predictors)

    def replay_examples(self, section: Section, replay: Replay, predictors: list[str]) -> None:
        by_step: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
        for row in replay.rows:
            if "id" in row and "step" in row and "predictor" in row:
                by_step.setdefault((str(row["id"]), int(row["step"])), {})[row["predictor"]] = row
        # steps where the predictors disagree, best first
        scored = sorted(
            by_step.items(),
            key=lambda kv: (
                -len({bool(r.get("hit_at_1")) for r in kv[1].values()}) * 10
                - sum(bool(r.get("hit_at_1")) for r in kv[1].values())
            ),
        )
        chosen = scored[:EXAMPLES]
        if not chosen:
            return
        rows = []
        for (trace_id, step), preds in chosen:
            gold = next((r.get("gold_call") for r in preds.values() if r.get("gold_call")), None)
            cells = [f"{code(trace_id[:8])} #{step}", code(call_text(gold, 56))]
            for name in predictors:
                r = preds.get(name)
                if r is None:
                    cells.append("–")
                    continue
                top = (r.get("pred_calls") or [None])[0]
                mark = "✓" if r.get("hit_at_1") else ("≈" if r.get("name_hit_at_1") else "✗")
                cells.append(f"{mark} {code(call_text(top, 56))}" if top else f"{mark} no guess")
            rows.append(cells)
        section.add(
            Heading("Example steps"),
            Table(
                ["step", "gold", *predictors],
                rows,
                align="l" * (2 + len(predictors)),
                wide=True,
                caption="Top guess of every predictor: ✓ hit, ≈ right tool only, ✗ miss.",
            ),
        )


def _latency_cell(p: Mapping[str, Any]) -> str:
    lat = p.get("latency") or {}
    value = _num(lat.get("p50")) if isinstance(lat, Mapping) else None
    if value is None:
        return "–"
    return f"{value * 1000:.2f} ms" if value < 1 else f"{value:.2f} s"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# --------------------------------------------------------------------------- entry point
def build_document(
    data: RunData, figures_dir: Path, title: str | None = None
) -> tuple[Document, list[F.FigureFile]]:
    builder = Builder(data, figures_dir)
    sections, failed = [], False
    for name, make in (
        ("training", builder.training_section),
        ("comparison", builder.comparison_section),
        ("speculation", builder.speculation_section),
    ):
        try:  # an input of a shape no reader foresaw costs its section, never the report
            sections.append(make())
        except Exception as exc:
            failed = True
            data.warnings.append(f"{name} section skipped ({type(exc).__name__}: {exc})".splitlines()[0])
    sections = [s for s in sections if s is not None]
    if failed and not sections:
        raise InputError(
            "nothing to report: every section failed ("
            + "; ".join(" ".join(w.split()) for w in data.warnings[-3:])
            + ")",
            data.run_dir,
        )
    sections.append(builder.setup_section())
    if data.warnings:
        notes = Section("notes", "Inputs skipped")
        notes.add(Para("; ".join(code(w) for w in data.warnings[:30]), muted=True))
        sections.append(notes)
    found = []
    if data.trainings:
        found.append(_count(len(data.trainings), "training run"))
    if data.comparisons:
        found.append(_count(len(data.comparisons), "comparison"))
    if data.evals:
        found.append(_count(len(data.evals), "evaluation"))
    if data.replays:
        found.append(_count(len(data.replays), "speculation replay"))
    subtitle = f"Run directory {code(str(data.run_dir))}: " + ", ".join(found) + "."
    order = ("Next-call", "Best predictor", "Simulated", "Tool-name", "Validation")
    cards = sorted(
        builder.cards, key=lambda c: next((i for i, o in enumerate(order) if c.label.startswith(o)), 9)
    )
    document = Document(
        title or f"specdecode report — {data.run_dir.resolve().name}",
        subtitle,
        Cards(cards) if cards else None,
        sections,
    )
    return document, builder.files


def write_report(run_dir: Path, out: Path | None = None, title: str | None = None) -> tuple[Path, Path]:
    """Scan ``run_dir`` and write ``report.md``, ``report.html`` and ``figures/`` under ``out``
    (default ``run_dir``); return the paths of the Markdown and HTML files."""
    from specdecode.report.html import render_html
    from specdecode.report.markdown import render_markdown

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("no such run directory", run_dir)
    data = collect(run_dir)
    if data.empty:
        message = (
            "nothing to report: no training_curves.json/training_summary.json, X.summary.json or "
            "replay summary.json found"
        )
        if data.warnings:  # name what was there but unreadable, on the one error line
            message += " (" + "; ".join(" ".join(w.split()) for w in data.warnings[:5]) + ")"
        raise InputError(message, run_dir)
    out = Path(out) if out is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    document, _ = build_document(data, out / "figures", title)
    md_path, html_path = out / "report.md", out / "report.html"
    write_text(md_path, render_markdown(document, out))
    write_text(html_path, render_html(document))
    return md_path, html_path
