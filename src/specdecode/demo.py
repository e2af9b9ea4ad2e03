"""``specdecode demo``: the whole pipeline, offline, on the embedded model, as far as it exists.

Each stage writes its files under the run directory and adds a section to ``report.md``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from specdecode.data import convert, synthesize
from specdecode.gaia import stratified_split
from specdecode.jsonl import atomic_path, write_jsonl
from specdecode.records import TraceRecord
from specdecode.registry import load_registry


def _level_table(parts: dict[str, list[TraceRecord]]) -> list[str]:
    lines = ["| split | L1 | L2 | L3 | total |", "|---|---:|---:|---:|---:|"]
    for name, rows in parts.items():
        counts = Counter(r.level for r in rows)
        lines.append(f"| {name} | {counts[1]} | {counts[2]} | {counts[3]} | {len(rows)} |")
    return lines


def data_stage(out: Path, n: int, seed: int, registry: str) -> tuple[list[str], dict[str, Path]]:
    """Synthesise traces, split them by level, convert every split to the three chat forms."""
    traces = synthesize(n, seed, registry)
    write_jsonl(out / "traces.jsonl", traces)
    rows = stratified_split([t.model_dump() for t in traces], seed=seed)
    by_id = {t.id: t for t in traces}
    parts = {name: [by_id[r["id"]] for r in split_rows] for name, split_rows in rows.items()}
    reg = load_registry(registry)
    files: dict[str, Path] = {}
    lines = [
        f"## Data\n\n{n} synthetic GAIA-format traces (registry `{registry}`, seed {seed}), "
        "split by level:\n",
        *_level_table(parts),
        "",
        "| split | plain | native | steps |",
        "|---|---:|---:|---:|",
    ]
    for name, split_traces in parts.items():
        write_jsonl(out / "traces" / f"{name}.jsonl", split_traces)
        counts = []
        for form in ("plain", "native", "steps"):
            path = out / "chat" / f"{name}.{form}.jsonl"
            counts.append(write_jsonl(path, convert(split_traces, form, reg)))
            files[f"{name}.{form}"] = path
        lines.append(f"| {name} | {counts[0]} | {counts[1]} | {counts[2]} |")
    return lines, files


def train_stage(out: Path, files: dict[str, Path], seed: int, max_steps: int) -> tuple[list[str], Path]:
    """LoRA-train the embedded SmolLM2 on the steps-form training split (resumes if interrupted)."""
    from specdecode.train import TrainConfig, train

    adapter = out / "adapter"
    done = adapter / "training_summary.json"
    config = TrainConfig(
        train_file=str(files["train.steps"]),
        val_file=str(files["val.steps"]),
        output_dir=str(adapter),
        model_name="smollm2-135m",
        max_steps=max_steps,
        eval_steps=max_steps // 2,
        save_steps=max_steps // 2,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=1e-3,
        logging_steps=5,
        seed=seed,
        resume=(adapter / f"checkpoint-{max_steps // 2}").is_dir(),
    )
    summary = json.loads(done.read_text()) if done.is_file() else train(config)
    lines = [
        "",
        "## Training",
        "",
        f"LoRA r={config.lora_r} on SmolLM2-135M-Instruct, {summary['global_step']} steps of "
        f"{config.per_device_train_batch_size} next-call examples ({summary['seconds']} s, "
        f"mixed precision: {summary.get('mixed_precision')}).",
        "",
        "| | validation loss | perplexity |",
        "|---|---:|---:|",
        f"| before training | {summary['initial_eval_loss']:.3f} | "
        f"{math.exp(summary['initial_eval_loss']):.2f} |",
        f"| after training | {summary['final_eval_loss']:.3f} | {summary['final_eval_perplexity']:.2f} |",
    ]
    return lines, adapter


def _cell(r: dict) -> str:
    return "–" if r["mean"] is None else f"{r['mean']:.3f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]"


def compare_stage(out: Path, files: dict[str, Path], adapter: Path, registry: str) -> list[str]:
    """Base vs. LoRA on the test split's next-call examples, one model load, paired statistics."""
    from specdecode.evaluate import compare, make_backend, make_judge
    from specdecode.evaluate.run import generation_config, load_examples
    from specdecode.prompts import PromptOptions

    reg = load_registry(registry)
    examples = load_examples(files["test.steps"], "next-call", reg, PromptOptions())
    backend = make_backend("hf", "smollm2-135m", str(adapter))
    summary = compare(
        backend,
        examples,
        out / "compare.jsonl",
        reg,
        "next-call",
        generation_config("next-call", None, 16, 1.0),
        make_judge("deterministic"),
    )
    lines = [
        "",
        "## Base vs. LoRA (next-call mode, test split)",
        "",
        f"{summary['n']} next-call examples; 95 % bootstrap intervals; exact McNemar test on the "
        "paired outcomes.",
        "",
        "| metric | base | LoRA | wins / ties / losses | McNemar p |",
        "|---|---:|---:|---:|---:|",
    ]
    for metric in ("parse_ok", "first_call_name", "first_call_exact", "name_f1", "args_match"):
        b, lo = summary["base"]["metrics"][metric], summary["lora"]["metrics"][metric]
        t = summary["paired"].get(metric)
        paired = f"{t['wins']} / {t['ties']} / {t['losses']} | {t['mcnemar_p']:.2g}" if t else "– | –"
        lines.append(f"| {metric} | {_cell(b)} | {_cell(lo)} | {paired} |")
    lines += ["", "Per-example results: `compare.jsonl`; summary: `compare.summary.json`."]
    return lines


def run_demo(out: Path, n: int = 160, seed: int = 0, registry: str = "tools4", max_steps: int = 30) -> Path:
    """Run every stage that exists and write ``report.md``; returns the report path."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# specdecode demo report", ""]
    data_lines, files = data_stage(out, n, seed, registry)
    lines += data_lines
    train_lines, adapter = train_stage(out, files, seed, max_steps)
    lines += train_lines
    lines += compare_stage(out, files, adapter, registry)
    report = out / "report.md"
    with atomic_path(report) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report
