"""``specdecode demo``: the whole pipeline, offline, on the embedded model.

Stages: synthetic GAIA-format data → level split → chat conversion → LoRA training →
base-vs-adapter comparison (next-call and trace modes) → speculation replay with every
predictor → the example agent live with and without the speculative executor → report.

A rerun reuses every finished stage whose inputs and settings are unchanged: each stage stores
a key (the hash of its settings and input files) and its result under ``RUN_DIR/stages/``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from specdecode import __version__
from specdecode.data import convert, synthesize
from specdecode.gaia import stratified_split
from specdecode.jsonl import write_json, write_jsonl
from specdecode.outputs import write_text
from specdecode.registry import load_registry
from specdecode.report.summary_md import agent_lines, summary_lines
from specdecode.results import (
    STAGES,
    AgentCheck,
    AgentStage,
    CompareStage,
    CompareSummary,
    DataStage,
    ReplaySummary,
    SpeculateStage,
    StageRecord,
    StageResult,
    TrainingSummary,
    TrainStage,
    read_result,
)
from specdecode.speculate.calibration import FIT_VERSION

console = Console(stderr=True)
MODEL = "smollm2-135m"
# No LoRA dropout in the demo's 24 steps: on CPU its random masks (7 projections × 30 layers) took
# 42 % of the training time, for the same validation loss (BENCHMARKS.md, issue #26).
DROPOUT = 0.0
# A call of the demo's registry is at most ~50 tokens (the adapter's longest: 46); the base model's
# answers that are no call run on to the limit, so the next-call comparison stops at 64, not 96.
NEXT_CALL_TOKENS = 64


def inference_dtype() -> str:
    """The weights' dtype for the demo's generation and scoring: bf16 on a CPU that computes it
    natively (AMX / AVX512-BF16: the comparison stage 47 s there against 90-93 s in fp32,
    BENCHMARKS.md), else ``auto`` (fp32 on other CPUs, where bf16 is emulated and slower;
    bf16/fp16 on GPUs)."""
    import torch

    from specdecode.models import cpu_has_fast_bf16

    return "bfloat16" if not torch.cuda.is_available() and cpu_has_fast_bf16() else "auto"


# --------------------------------------------------------------------------- stage cache
def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """Hash of a file, or of every file below a folder (names and bytes)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if "checkpoint-" in str(file):
            continue
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def stage(
    out: Path,
    name: str,
    key: dict[str, Any],
    run: Callable[[], dict[str, Any]],
    outputs: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """Run ``run`` unless a stored result with the same key exists (and every path in ``outputs``
    is still there); store and return its result (``stages/NAME.json``, a
    :class:`specdecode.results.StageRecord`)."""
    path = out / "stages" / f"{name}.json"
    key = {"stage": name, "version": __version__, **key}
    if path.is_file() and all(p.exists() for p in outputs):
        stored = read_result(path, StageRecord)
        if stored.key == _digest(key):
            console.print(f"[dim]↺ {name}: reused (inputs unchanged)[/]")
            return stored.result
    console.rule(f"[bold]{name}")
    started = time.time()
    result = run()
    result["seconds"] = round(time.time() - started, 1)
    typed = STAGES.get(name, StageResult).model_validate(result).dump()
    StageRecord.new(key=_digest(key), result=typed).write(path)
    return typed


def stage_results(out: Path) -> dict[str, StageResult]:
    """Every stored stage result of a run directory, typed, in pipeline order."""
    found = {p.stem: p for p in (out / "stages").glob("*.json")}
    order = [*STAGES, *sorted(set(found) - set(STAGES))]
    return {name: read_result(found[name], StageRecord).typed(name) for name in order if name in found}


# --------------------------------------------------------------------------- stages
def data_stage(out: Path, n: int, seed: int, registry: str) -> dict[str, Any]:
    """Synthesise traces, split them by level, convert every split to the chat forms."""
    traces = synthesize(n, seed, registry)
    write_jsonl(out / "traces.jsonl", traces)
    rows = stratified_split([t.model_dump() for t in traces], seed=seed)
    by_id = {t.id: t for t in traces}
    reg = load_registry(registry)
    levels, counts = {}, {}
    for name, split_rows in rows.items():
        split = [by_id[r["id"]] for r in split_rows]
        write_jsonl(out / "traces" / f"{name}.jsonl", split)
        level_count = Counter(t.level for t in split)
        levels[name] = {"L1": level_count[1], "L2": level_count[2], "L3": level_count[3], "total": len(split)}
        counts[name] = {}
        for form in ("plain", "native", "steps", "conversation"):
            chats = convert(split, form, reg)
            counts[name][form] = write_jsonl(out / "chat" / f"{name}.{form}.jsonl", chats)
    return {"levels": levels, "examples": counts, "n": n, "seed": seed, "registry": registry}


def train_stage(out: Path, seed: int, max_steps: int, form: str) -> dict[str, Any]:
    """LoRA-train the embedded SmolLM2 on the training split. An interrupted run of the same
    settings resumes from its checkpoints; an adapter of other settings is replaced."""
    from specdecode.train import TrainConfig, train

    adapter = out / "adapter"
    traces = file_digest(out / "traces")
    settings = _digest({"traces": traces, "seed": seed, "steps": max_steps, "form": form, "dropout": DROPOUT})
    marker = adapter / ".demo-settings"
    same = marker.is_file() and marker.read_text(encoding="utf-8") == settings
    if adapter.exists() and not same:
        shutil.rmtree(adapter)  # the demo's own output from other settings (never a user's file)
    adapter.mkdir(parents=True, exist_ok=True)
    marker.write_text(settings, encoding="utf-8")
    config = TrainConfig(
        train_file=str(out / "traces" / "train.jsonl"),
        val_file=str(out / "traces" / "val.jsonl"),
        output_dir=str(adapter),
        model_name=MODEL,
        form=form,
        max_steps=max_steps,
        eval_steps=max_steps,  # validated once, at the end (a pass costs ~10 % of training)
        save_steps=max_steps // 2,  # a checkpoint halfway, to resume an interrupted demo from
        # conversation form: a conversation holds ~3.5 calls, so 4 conversations ≈ 14 targets a step
        per_device_train_batch_size=4 if form == "conversation" else 8,
        gradient_accumulation_steps=1,
        learning_rate=1e-3,
        lora_dropout=DROPOUT,
        logging_steps=5,
        seed=seed,
        resume=same and any(adapter.glob("checkpoint-*")),
    )
    summary = TrainingSummary.model_validate(train(config))
    return {
        "form": form,
        "lora_r": config.lora_r,
        "steps": summary.global_step,
        "batch": config.per_device_train_batch_size,
        "train_seconds": summary.seconds,
        "mixed_precision": summary.mixed_precision,
        "initial_eval_loss": summary.initial_eval_loss,
        "final_eval_loss": summary.final_eval_loss,
        "final_eval_perplexity": summary.final_eval_perplexity,
    }


def compare_stage(out: Path, mode: str, limit: int | None, dtype: str = "auto") -> dict[str, Any]:
    """Base vs adapter on the test split (one model load, paired statistics)."""
    from specdecode.evaluate.run import run_compare
    from specdecode.settings import CompareSettings

    name = "compare" if mode == "next-call" else "compare_trace"
    settings = CompareSettings(
        base_model=MODEL,
        lora_dir=str(out / "adapter"),
        test_file=out / "traces" / "test.jsonl",
        output_file=out / f"{name}.jsonl",
        mode=mode,
        limit=limit,
        max_new_tokens=NEXT_CALL_TOKENS if mode == "next-call" else 192,
        overwrite=True,
        dtype=dtype,
    )
    summary = CompareSummary.model_validate(run_compare(settings))
    metrics = ("parse_ok", "first_call_name", "first_call_exact", "name_f1", "args_match")
    return {
        "mode": mode,
        "n": summary.n,
        "file": f"{name}.jsonl",
        "dtype": summary.dtype,
        "base": {m: summary.base.metrics[m].dump() for m in metrics},
        "lora": {m: summary.lora.metrics[m].dump() for m in metrics},
        "paired": {m: summary.paired[m].dump() for m in metrics if m in summary.paired},
    }


def speculation_stage_result(out: Path, registry: str, dtype: str = "auto") -> dict[str, Any]:
    """Fit the cheap predictors on the training traces and replay the test traces with every one."""
    from specdecode.speculate.demo_stage import speculation_stage

    lines = speculation_stage(
        out,
        out / "traces" / "train.jsonl",
        out / "traces" / "test.jsonl",
        out / "adapter",
        registry,
        val_traces=out / "traces" / "val.jsonl",
        dtype=dtype,
    )
    replay = read_result(out / "speculate" / "replay" / "summary.json", ReplaySummary)
    names = list(replay.results)
    hit = {n: p.rate("hit_at_1").mean or 0.0 for n, p in replay.results.items()}
    best = max(names, key=lambda n: hit[n])
    headline = ", ".join(f"{n} {hit[n]:.2f}" for n in names)
    return {"lines": lines, "headline": f"hit@1 (name+args): {headline}; best {best}"}


def agent_stage(out: Path, registry: str, seed: int) -> dict[str, Any]:
    """The test traces as a live agent (a recorded actor, tools that sleep) without and with the
    speculative executor (pattern predictor), next to replay's prediction for the same run."""
    from specdecode.jsonl import read_records
    from specdecode.records import TraceRecord
    from specdecode.speculate.live import live_check
    from specdecode.speculate.predictors import fit_tables
    from specdecode.speculate.simulate import LatencyModel

    reg = load_registry(registry)
    train = read_records(out / "traces" / "train.jsonl", TraceRecord)
    test = read_records(out / "traces" / "test.jsonl", TraceRecord)
    latency = LatencyModel.from_specs("fixed:0.06", ["uniform:0.02,0.06", "final_answer=fixed:0"], seed=seed)
    result = live_check(test, reg, fit_tables(train)["pattern"], latency)
    write_json(out / "agent.json", result)
    check = AgentCheck.model_validate(result)
    fields = {
        k: v
        for k, v in check.dump().items()
        if k != "schema_version" and (not isinstance(v, float) or v == v)
    }
    return {**fields, "lines": agent_lines(check)}


# --------------------------------------------------------------------------- summary
def headline(result: StageResult) -> str:
    """What one stage found, in a line."""
    r = result
    if isinstance(r, DataStage):
        return f"{r.n} traces, " + ", ".join(f"{k} {v.total}" for k, v in r.levels.items())
    if isinstance(r, TrainStage):
        return f"{r.steps} steps, val loss {r.initial_eval_loss:.2f} → {r.final_eval_loss:.2f}"
    if isinstance(r, CompareStage):
        key = "first_call_exact" if r.mode == "next-call" else "name_f1"
        b, lo, p = r.base[key].mean, r.lora[key].mean, r.paired.get(key)
        return f"{key}: base {b:.2f} → LoRA {lo:.2f}" + (f" (p={p.mcnemar_p:.1g})" if p else "")
    if isinstance(r, AgentStage):
        return f"measured {r.measured_speedup:.2f}× vs predicted {r.predicted_speedup:.2f}×, {r.hits} hits"
    return r.headline or "" if isinstance(r, SpeculateStage) else ""


def headlines(results: dict[str, StageResult]) -> list[tuple[str, str, str]]:
    """One line per stage for the closing screen: (stage, seconds, what it found)."""
    return [(name, f"{r.seconds or 0:.0f} s", headline(r)) for name, r in results.items()]


def run_demo(
    out: Path,
    n: int = 160,
    seed: int = 0,
    registry: str = "tools4",
    max_steps: int = 24,
    form: str = "conversation",
    trace_limit: int = 8,
) -> Path:
    """Run every stage (reusing finished ones) and write the reports; returns ``summary.md``
    (the per-stage results are in ``RUN_DIR/stages/``)."""
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    results["data"] = stage(
        out, "data", {"n": n, "seed": seed, "registry": registry}, lambda: data_stage(out, n, seed, registry)
    )
    traces = {s: file_digest(out / "traces" / f"{s}.jsonl") for s in ("train", "val", "test")}
    results["train"] = stage(
        out,
        "train",
        {"traces": traces, "seed": seed, "max_steps": max_steps, "form": form, "lora_dropout": DROPOUT},
        lambda: train_stage(out, seed, max_steps, form),
        outputs=(out / "adapter" / "adapter_model.safetensors",),
    )
    adapter = file_digest(out / "adapter" / "adapter_model.safetensors")
    dtype = inference_dtype()
    results["compare"] = stage(
        out,
        "compare",
        {"test": traces["test"], "adapter": adapter, "dtype": dtype, "tokens": NEXT_CALL_TOKENS},
        lambda: compare_stage(out, "next-call", None, dtype),
    )
    results["compare_trace"] = stage(
        out,
        "compare_trace",
        {"test": traces["test"], "adapter": adapter, "limit": trace_limit, "dtype": dtype},
        lambda: compare_stage(out, "trace", trace_limit, dtype),
    )
    results["speculate"] = stage(
        out,
        "speculate",
        {
            "train": traces["train"],
            "val": traces["val"],
            "test": traces["test"],
            "adapter": adapter,
            "registry": registry,
            "predictors": 5,  # the predictors replayed and their settings (hybrid: one call, its probability)
            "calibration": FIT_VERSION,
            "dtype": dtype,
        },
        lambda: speculation_stage_result(out, registry, dtype),
    )
    results["agent"] = stage(
        out,
        "agent",
        {"train": traces["train"], "test": traces["test"], "registry": registry, "seed": seed},
        lambda: agent_stage(out, registry, seed),
    )
    lines = summary_lines({name: STAGES[name].model_validate(r) for name, r in results.items()})
    summary = out / "summary.md"
    write_text(summary, "\n".join(lines) + "\n")
    from specdecode.report import write_report

    console.rule("[bold]report")
    write_report(out, title="specdecode demo (SmolLM2-135M, synthetic GAIA-format data)")
    return summary
