"""``specdecode eval`` and ``specdecode compare``: generate, extract calls, score, summarise.

Both read trace or chat JSONL, build one request per example (``trace`` mode: the whole trace
from the question; ``next-call`` mode: one prompt per step, the speculator's job), and write
per-example JSONL (the prototype's keys plus structured fields) and a summary JSON beside it.
Reruns resume: ids already in the output are skipped, and the final file is rewritten in input
order, so it equals the file of an uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from specdecode.errors import InputError
from specdecode.evaluate.backends import Backend, Generation, GenerationConfig
from specdecode.evaluate.examples import MODES, Example, load_examples
from specdecode.evaluate.judges import Judge
from specdecode.evaluate.metrics import BINARY, example_metrics, paired
from specdecode.evaluate.parse import parse_calls
from specdecode.evaluate.resume import check_output_file, fingerprint_id, run_examples
from specdecode.evaluate.summary import count, latency_summary, summarise
from specdecode.jsonl import write_jsonl
from specdecode.models import adapter_form, adapter_identity, file_sha256
from specdecode.prompts import PromptOptions
from specdecode.records import ToolCall
from specdecode.registry import Registry
from specdecode.results import CompareRow, CompareSummary, EvalRow, EvalSummary, as_row
from specdecode.settings import CompareSettings, EvalSettings

console = Console(stderr=True)
__all__ = [
    "MODES",
    "EvalRun",
    "Example",
    "backend_for",
    "check_output_file",
    "compare",
    "evaluate",
    "fingerprint_id",
    "generation_config",
    "latency_summary",
    "load_examples",
    "prepare",
    "primary",
    "run_compare",
    "run_eval",
    "run_examples",
    "run_fingerprint",
    "score",
    "summarise",
]


def _calls_json(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    return [{"tool_name": c.tool_name, "arguments": c.arguments} for c in calls]


def score(example: Example, generation: Generation, registry: Registry, mode: str) -> dict[str, Any]:
    """Parse one generation and compute its metrics against the gold calls."""
    positional = {t.name: list(t.parameters.get("properties", {})) for t in registry.tools}
    parsed = parse_calls(generation.text, generation.tool_calls, set(registry.names), positional)
    pred = parsed.calls[:1] if mode == "next-call" else parsed.calls
    metrics = example_metrics(example.gold, pred, parsed.ok)
    unknown = [c.tool_name for c in pred if c.tool_name not in set(registry.names)]
    return {
        "pred_raw": generation.text,
        "pred_calls": _calls_json(pred),
        "parse_format": parsed.format,
        "unknown_tools": unknown,
        "metrics": metrics,
        "latency": round(generation.latency, 4),
        "first_token_latency": _round(getattr(generation, "first_token_latency", None)),
        "batch_size": getattr(generation, "batch_size", None),
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "tokens_per_s": round(generation.completion_tokens / generation.latency, 2)
        if generation.latency
        else None,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def primary(metrics: dict[str, Any], mode: str) -> float:
    """The prototype's ``accuracy``: first-call name in next-call mode, name F1 for whole traces."""
    return float(metrics["first_call_name"] if mode == "next-call" else metrics["name_f1"])


def _base_row(example: Example) -> dict[str, Any]:
    return {
        "id": example.id,
        "level": example.level,
        "step": example.step,
        "gold_raw": example.gold_raw,
        "gold_calls": _calls_json(example.gold),
        "gold_tool": example.gold[0].tool_name if example.gold else None,
    }


def generation_config(
    mode: str,
    max_new_tokens: int | None,
    batch_size: int,
    repetition_penalty: float,
    temperature: float = 0.0,
    seed: int = 0,
) -> GenerationConfig:
    """Next-call mode stops after the first complete call and needs few tokens."""
    return GenerationConfig(
        max_new_tokens=max_new_tokens or (96 if mode == "next-call" else 512),
        stop_at_first_call=mode == "next-call",
        batch_size=batch_size,
        repetition_penalty=repetition_penalty,
        temperature=temperature,
        seed=seed,
    )


def _chunk(config: GenerationConfig) -> int:
    """Examples per resumable chunk: a few batches."""
    return max(config.batch_size, 1) * 4


def evaluate(
    backend: Backend,
    examples: Sequence[Example],
    output: Path,
    registry: Registry,
    mode: str,
    config: GenerationConfig,
    adapter: bool = True,
    *,
    fingerprint: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Score one model (the adapter when the backend has one) on every example.

    ``fingerprint`` (the run's settings) is stored in the summary and, as a short id, in every
    row: a rerun into the same file resumes only when it matches.
    """
    fingerprint = {"command": "eval", **(fingerprint or {})}
    run_id = fingerprint_id(fingerprint)

    def make_rows(batch: list[Example]) -> list[dict[str, Any]]:
        generations = backend.generate([e.request for e in batch], config, adapter=adapter)
        rows = []
        for example, generation in zip(batch, generations):
            scored = {**_base_row(example), **score(example, generation, registry, mode)}
            rows.append(as_row(EvalRow, {**scored, "accuracy": primary(scored["metrics"], mode)}))
        return rows

    started = time.time()
    rows = run_examples(
        examples, output, make_rows, _chunk(config), f"eval ({backend.name})", run_id, overwrite
    )
    summary = EvalSummary.new(
        **summarise(rows, mode),
        backend=backend.name,
        dtype=getattr(backend, "dtype", None),
        adapter=adapter and backend.has_adapter,
        seconds=round(time.time() - started, 1),
        run=run_id,
        fingerprint=fingerprint,
    )
    return summary.write(output.with_suffix(".summary.json"))


def compare(
    backend: Backend,
    examples: Sequence[Example],
    output: Path,
    registry: Registry,
    mode: str,
    config: GenerationConfig,
    judge: Judge,
    *,
    fingerprint: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Base and adapter on the same examples from one loaded model, with paired statistics.

    A judge may add rows' fields (``Verdict.extra``) and summary fields (``judge.summarise(rows)``),
    and its ``fingerprint()`` (e.g. judge model and base URL) joins the run's fingerprint. Resumed
    rows whose verdict is ``error`` are judged again from their kept answers (nothing regenerated).
    """
    if not backend.has_adapter:
        raise InputError("compare needs an adapter (--lora_dir)")
    fingerprint = {"command": "compare", "judge": judge.name, **judge.fingerprint(), **(fingerprint or {})}
    run_id = fingerprint_id(fingerprint)
    fresh: set[str] = set()  # ids judged by this run

    def judged(example: Example, sb: dict[str, Any], sl: dict[str, Any]) -> dict[str, Any]:
        verdict = judge.compare(example, sb, sl, mode)
        fresh.add(example.id)
        return {
            "base_score": verdict.base_score,
            "lora_score": verdict.lora_score,
            "winner": verdict.winner,
            "comparison_reason": verdict.reason,
            **verdict.extra,
        }

    def make_rows(batch: list[Example]) -> list[dict[str, Any]]:
        requests = [e.request for e in batch]
        base = backend.generate(requests, config, adapter=False)
        lora = backend.generate(requests, config, adapter=True)
        rows = []
        for example, b, lo in zip(batch, base, lora):
            sb, sl = score(example, b, registry, mode), score(example, lo, registry, mode)
            fields = {
                **_base_row(example),
                **judged(example, sb, sl),
                "base_pred": b.text,
                "lora_pred": lo.text,
            }
            for key, value in sb.items():
                fields[f"base_{key}"] = value
            for key, value in sl.items():
                fields[f"lora_{key}"] = value
            rows.append(as_row(CompareRow, fields))
        return rows

    def rejudge(rows: list[dict[str, Any]]) -> None:
        """Judge resumed error rows again from their stored answers, then rewrite the file."""
        stale = [r for r in rows if r.get("winner") == "error" and r["id"] not in fresh]
        if not stale:
            return
        console.print(f"judging again: {len(stale)} resumed row(s) whose verdict was an error")
        by_id = {e.id: e for e in examples}
        for row in stale:
            sides = [
                {k.removeprefix(p): v for k, v in row.items() if k.startswith(p)} for p in ("base_", "lora_")
            ]
            for key in [k for k in row if k.startswith("judge_")]:  # the failed verdict's own fields
                del row[key]
            row.update(judged(by_id[row["id"]], *sides))
        write_jsonl(output, rows)

    started = time.time()
    rows = run_examples(
        examples, output, make_rows, _chunk(config), f"compare ({backend.name})", run_id, overwrite
    )
    rejudge(rows)
    tests = {
        name: paired(
            [bool(r["base_metrics"][name]) for r in rows], [bool(r["lora_metrics"][name]) for r in rows]
        )
        for name in BINARY
        if name not in ("loop", "over_action")
    }
    winners = count(r["winner"] for r in rows)
    summary = CompareSummary.new(
        n=len(rows),
        mode=mode,
        backend=backend.name,
        dtype=getattr(backend, "dtype", None),
        judge=judge.name,
        base=summarise(rows, mode, "base_"),
        lora=summarise(rows, mode, "lora_"),
        paired=tests,
        winners=winners,
        seconds=round(time.time() - started, 1),
        run=run_id,
        fingerprint=fingerprint,
        **judge.summarise(rows),
    )
    return summary.write(output.with_suffix(".summary.json"))


# --------------------------------------------------------------------------- from settings
def run_fingerprint(settings: EvalSettings, registry: Registry, prompt_form: str) -> dict[str, Any]:
    """Everything that changes a run's answers: model and adapter identity, mode, backend, dtype,
    registry, prompt options, generation settings and the input file's hash."""
    return {
        "base_model": settings.base_model,
        "adapter": adapter_identity(settings.lora_dir, settings.backend),
        "lora_name": settings.lora_name,
        "mode": settings.mode,
        "backend": settings.backend,
        "dtype": settings.dtype,
        "registry": registry.fingerprint(),
        "tool_style": settings.tool_style,
        "prompt_form": prompt_form,
        "constrained": settings.constrained,
        "max_new_tokens": settings.resolved_max_new_tokens(),
        "temperature": settings.temperature,
        "repetition_penalty": settings.repetition_penalty,
        "seed": settings.seed,
        "test_file_sha256": file_sha256(settings.test_file),
    }


def resolve_prompt_form(settings: EvalSettings) -> str:
    """``auto``: the form the adapter was trained on, else ``steps``."""
    if settings.prompt_form != "auto":
        return settings.prompt_form
    return "conversation" if adapter_form(settings.lora_dir) == "conversation" else "steps"


@dataclass
class EvalRun:
    """What ``eval`` and ``compare`` set up from their settings before generating."""

    registry: Registry
    examples: list[Example]
    config: GenerationConfig
    fingerprint: dict[str, Any]
    settings: EvalSettings

    def inputs(self) -> tuple[list[Example], Path, Registry, str, GenerationConfig]:
        """What ``evaluate`` and ``compare`` take first: examples, output, registry, mode, config."""
        return self.examples, self.settings.output_file, self.registry, self.settings.mode, self.config

    def options(self) -> dict[str, Any]:
        """Their keyword options: the fingerprint and whether to replace another run's rows."""
        return {"fingerprint": self.fingerprint, "overwrite": self.settings.overwrite}


def prepare(settings: EvalSettings) -> EvalRun:
    """Registry, examples, generation settings and fingerprint (checked before any model loads)."""
    from specdecode.registry import load_registry

    check_output_file(settings.output_file)
    registry = load_registry(settings.registry)
    prompt_form = resolve_prompt_form(settings)
    options = PromptOptions(tool_style=settings.tool_style)
    examples = load_examples(
        settings.test_file,
        settings.mode,
        registry,
        options,
        settings.skip_invalid,
        prompt_form=prompt_form,
        constrained=settings.constrained,
    )
    if settings.limit:
        examples = examples[: settings.limit]
    config = generation_config(
        settings.mode,
        settings.resolved_max_new_tokens(),
        settings.batch_size,
        settings.repetition_penalty,
        settings.temperature,
        settings.seed,
    )
    fingerprint = run_fingerprint(settings, registry, prompt_form)
    return EvalRun(registry, examples, config, fingerprint, settings)


def backend_for(settings: EvalSettings) -> Backend:
    """The generation backend the settings name."""
    from specdecode.evaluate.backends import make_backend

    extra: dict[str, Any] = {}
    if settings.disable_thinking:
        extra["chat_template_kwargs"] = {"enable_thinking": False}
    return make_backend(
        settings.backend,
        settings.base_model,
        settings.lora_dir,
        base_url=settings.base_url,
        lora_name=settings.lora_name,
        api_key_env=settings.api_key_env,
        trust_remote_code=settings.trust_remote_code,
        dtype=settings.dtype,
        **extra,
    )


def run_eval(settings: EvalSettings) -> dict[str, Any]:
    """``specdecode eval``: one model on every example; returns the summary."""
    run = prepare(settings)
    return evaluate(backend_for(settings), *run.inputs(), adapter=True, **run.options())


def run_compare(settings: CompareSettings) -> dict[str, Any]:
    """``specdecode compare``: base vs adapter with a judge; returns the summary."""
    from specdecode.evaluate import make_judge

    judge = make_judge(settings.judge, **_judge_settings(settings))  # a bad judge fails before loading
    run = prepare(settings)
    return compare(backend_for(settings), *run.inputs(), judge, **run.options())


def _judge_settings(settings: CompareSettings) -> dict[str, Any]:
    given = {
        "model": settings.judge_model,
        "base_url": settings.judge_base_url,
        "api_key_env": settings.judge_api_key_env,
    }
    return {k: v for k, v in given.items() if v is not None}
