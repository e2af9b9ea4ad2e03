"""Real-data benchmark: every predictor on τ-bench traces with executed tools (tau-retail, tau-airline).

    .venv/bin/python benchmarks/real_data.py                      # the full run, stages cached in runs/real
    .venv/bin/python benchmarks/real_data.py --limit 24 --max-steps 2 --out runs/real-smoke   # plumbing

Stages (a rerun reuses every finished stage whose inputs and settings are unchanged, as the demo does):

1. data   — ``specdecode data bench`` for each set: seeded 60/10/30 split by user;
2. fit    — the ``frequency`` and ``pattern`` tables of each set, on its training split;
3. train  — one LoRA adapter of the embedded SmolLM2-135M on both sets' training conversations
            (conversation form: every call of a trace trained in one pass; each conversation carries
            its own set's tools), micro-batches by token budget;
4. replay — every predictor on each set's test split (hit@1/hit@k, intervals, McNemar, simulation);
            ``verify`` calibrates its probabilities on the set's validation split;
5. table  — hit@1 by name and by name + arguments with 95 % intervals, McNemar against ``pattern``,
            simulated speed-up and wasted calls per step, and the fewest wasted calls per step at
            which the launch policy (swept over λ) saves as much time (to within 1 %) as ``pattern``
            launching its top guess, per set and pooled over both sets;
            printed, and written to OUT/results.md and OUT/results.json.

Latency model of the simulation: the actor thinks 2 s per step, tools take log-normal(0, 0.6) s
(median 1 s), the model predictors' latency is their measured batch-1 latency with the cached
prefix (``speculate replay``'s default). The model predictors run in bf16 on CPUs with AMX /
AVX512-BF16 (as ``make demo`` does), else in the model's own dtype (``--dtype`` to choose).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from specdecode.data import convert
from specdecode.data.bench import write_bench
from specdecode.demo import _digest, file_digest, inference_dtype, stage
from specdecode.evaluate.metrics import paired, rate
from specdecode.jsonl import read_records, write_json, write_jsonl
from specdecode.records import TraceRecord
from specdecode.registry import load_registry
from specdecode.speculate.calibration import FIT_VERSION

console = Console(stderr=True)
SETS = ("tau-retail", "tau-airline")
MODEL = "smollm2-135m"
ACTOR, TOOLS = "fixed:2.0", ("lognormal:0,0.6",)
TABLES = ("frequency", "pattern", "pattern-nocopy", "bigram-memory", "pattern-v1")
MODELS = ("base", "lora", "hybrid", "verify")


def data_stage(out: Path, name: str, seed: int, limit: int | None) -> dict[str, Any]:
    manifest = write_bench(name, out / "data" / name, seed=seed, limit=limit, overwrite=True)
    return {
        "splits": {k: v["traces"] for k, v in manifest["splits"].items()},
        "steps": manifest["all"]["steps"],
    }


def chat_stage(out: Path, sets: list[str]) -> dict[str, Any]:
    """Both sets' train and validation traces as conversation-form chat records (own tools each)."""
    counts = {}
    for split in ("train", "val"):
        chats = []
        for name in sets:
            folder = out / "data" / name
            registry = load_registry(folder / "tools.yaml")
            chats += convert(read_records(folder / f"{split}.jsonl", TraceRecord), "conversation", registry)
        counts[split] = write_jsonl(out / "chat" / f"{split}.conversation.jsonl", chats)
    return counts


def train_stage(out: Path, args: argparse.Namespace, adapter: Path) -> dict[str, Any]:
    """Train the adapter into ``adapter`` (a folder per training setting: an adapter of other
    settings, e.g. other ``--sets``, is never overwritten); an interrupted run resumes from its
    last checkpoint."""
    from specdecode.train import TrainConfig, train

    every = max(1, args.max_steps // 3)  # checkpoints to resume from; each validation pass costs minutes
    config = TrainConfig(
        train_file=str(out / "chat" / "train.conversation.jsonl"),
        val_file=str(out / "chat" / "val.conversation.jsonl"),
        output_dir=str(adapter),
        model_name=MODEL,
        form="conversation",
        registry=str(
            out / "data" / SETS[0] / "tools.yaml"
        ),  # saved beside the adapter; records carry their tools
        max_steps=args.max_steps,
        eval_steps=every,
        save_steps=every,
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1,
        learning_rate=args.learning_rate,
        max_length=args.max_length,
        max_tokens_per_batch=args.max_tokens_per_batch,
        logging_steps=1,
        seed=args.seed,
        resume=any(adapter.glob("checkpoint-*")),
    )
    summary = train(config)
    data = summary["data"][0]
    return {
        "adapter": str(adapter),
        "steps": summary["global_step"],
        "batch": args.batch,
        "conversations": summary["train_examples"],
        "train_tokens_per_epoch": data.get("tokens"),
        "tokens_trained": summary["memory"]["train_tokens_seen"],
        "train_seconds": summary["seconds"],
        "initial_eval_loss": summary["initial_eval_loss"],
        "final_eval_loss": summary["final_eval_loss"],
        "mixed_precision": summary["mixed_precision"],
        "memory": summary["memory"],
    }


def replay_stage(
    out: Path, name: str, predictors: list[str], args: argparse.Namespace, adapter: Path
) -> dict[str, Any]:
    from specdecode.evaluate.backends import make_backend
    from specdecode.models import adapter_form
    from specdecode.speculate.replay import ReplaySettings
    from specdecode.speculate.run import build_predictors, fit, latency_settings, run_replay

    folder = out / "data" / name
    registry = load_registry(folder / "tools.yaml")
    fit(folder / "train.jsonl", out / name / "fitted")
    needs_model = any(p in MODELS for p in predictors)
    backend = make_backend("hf", MODEL, str(adapter), dtype=args.dtype) if needs_model else None
    built = build_predictors(
        predictors,
        out / name / "fitted",
        backend,
        form=adapter_form(adapter),
        constrained=True,
        batch_size=8,
        max_new_tokens=args.max_new_tokens,
        samples=0,
    )
    latency, _ = latency_settings(ACTOR, list(TOOLS), None)
    settings = ReplaySettings(k=3, latency=latency, latency_samples=args.latency_samples)
    summary = run_replay(
        folder / "test.jsonl",
        registry,
        built,
        out / name / "replay",
        settings,
        val_traces=folder / "val.jsonl",
    )
    return {"summary": str(out / name / "replay" / "summary.json"), "steps": summary["steps"]}


# --------------------------------------------------------------------------- the table
def _rows(out: Path, name: str) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for line in (out / name / "replay" / "steps.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rows.setdefault(row["predictor"], []).append(row)
    return rows


def _pct(r: dict[str, Any]) -> str:
    if r.get("mean") is None:
        return "–"
    return f"{100 * r['mean']:.1f} [{100 * r['ci95'][0]:.0f}, {100 * r['ci95'][1]:.0f}]"


SAME_SAVING = 0.01  # "the same time saved": within 1 % (predictors' latencies differ by milliseconds)


def wasted_at(frontier: list[dict[str, Any]], saved: float) -> float | None:
    """The fewest wasted calls per step at which the launch policy (swept over λ) saves at least
    ``saved`` seconds, to within ``SAME_SAVING`` (None: no λ saves that much)."""
    reach = [f["wasted_per_step"] for f in frontier if f["time_saved_seconds"] >= saved * (1 - SAME_SAVING)]
    return min(reach) if reach else None


def results(out: Path, sets: list[str], predictors: list[str]) -> dict[str, Any]:
    """Per set and pooled: rates with intervals, McNemar vs pattern, simulation per step."""
    table: dict[str, Any] = {}
    pooled: dict[str, list[dict[str, Any]]] = {p: [] for p in predictors}
    for name in [*sets, "pooled"]:
        if name == "pooled":
            rows, sims = pooled, None
        else:
            rows = _rows(out, name)
            summary = json.loads((out / name / "replay" / "summary.json").read_text(encoding="utf-8"))
            sims = {p: summary[p]["simulation"] for p in predictors}
            frontiers = {p: summary[p].get("frontier", []) for p in predictors}
            for p in predictors:
                pooled[p] += rows[p]
        block: dict[str, Any] = {}
        for p in predictors:
            r = rows[p]
            entry = {
                "steps": len(r),
                "name_hit_at_1": rate([x["name_hit_at_1"] for x in r]),
                "hit_at_1": rate([x["hit_at_1"] for x in r]),
                "hit_at_k": rate([x["hit_at_k"] for x in r]),
            }
            if p != "pattern" and "pattern" in rows:
                entry["vs_pattern"] = paired(
                    [x["hit_at_1"] for x in rows["pattern"]], [x["hit_at_1"] for x in r]
                )
            if sims is not None:
                sim = sims[p]
                entry["speedup"] = sim["speedup"]
                entry["wasted_calls_per_step"] = sim["wasted_calls"] / max(sim["steps"], 1)
                if "pattern" in sims:
                    entry["wasted_at_pattern_saving"] = wasted_at(
                        frontiers[p], sims["pattern"]["time_saved_seconds"]
                    )
            block[p] = entry
        table[name] = block
    return table


def gates(out: Path, sets: list[str]) -> dict[str, Any]:
    """Per set: ``verify``'s validation comparison of its best model fit with the table's ranking."""
    found = {}
    for name in sets:
        path = out / name / "replay" / "calibration.json"
        fit = json.loads(path.read_text(encoding="utf-8")).get("verify", {}) if path.exists() else {}
        if fit.get("versus_table"):
            found[name] = {**fit["versus_table"], "validation_steps": fit.get("steps")}
    return found


def markdown(table: dict[str, Any], predictors: list[str], gate: dict[str, Any] | None = None) -> list[str]:
    lines = []
    for name, g in (gate or {}).items():
        verdict = "model used" if g["model_chosen"] else "the table's ranking kept, no model run"
        lines.append(
            f"verify on {name}'s {g['validation_steps']} validation steps, best model fit vs the table's "
            f"ranking: {g['wins']}/{g['ties']}/{g['losses']}, p = {g['mcnemar_p']:.2g}: {verdict}"
        )
    lines += [""] if gate else []
    for name, block in table.items():
        steps = next(iter(block.values()))["steps"]
        lines += [
            f"**{name}** ({steps} test steps)",
            "",
            "| predictor | name hit@1 % | name + args hit@1 % | hit@3 % | vs pattern (W/T/L, McNemar p) "
            "| speed-up | wasted calls / step | wasted / step at pattern's saving |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p in predictors:
            e = block[p]
            vs = e.get("vs_pattern")
            vs_text = f"{vs['wins']}/{vs['ties']}/{vs['losses']}, p = {vs['mcnemar_p']:.2g}" if vs else "–"
            speed = f"{e['speedup']:.3f}×" if "speedup" in e else "–"
            wasted = f"{e['wasted_calls_per_step']:.2f}" if "wasted_calls_per_step" in e else "–"
            at = e.get("wasted_at_pattern_saving")
            at_text = f"{at:.2f}" if at is not None else ("–" if "speedup" not in e else "never")
            lines.append(
                f"| {p} | {_pct(e['name_hit_at_1'])} | {_pct(e['hit_at_1'])} | {_pct(e['hit_at_k'])} | "
                f"{vs_text} | {speed} | {wasted} | {at_text} |"
            )
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/real"))
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated: tau-retail,tau-airline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="only the first N tasks of each set")
    parser.add_argument("--max-steps", type=int, default=36, help="optimizer steps of the adapter")
    parser.add_argument("--batch", type=int, default=4, help="conversations per optimizer step")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=4096)
    parser.add_argument("--max-tokens-per-batch", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--latency-samples", type=int, default=8)
    parser.add_argument(
        "--dtype",
        default=None,
        help="weights' dtype for the model predictors (default: the demo's choice, bfloat16 on CPUs "
        "with AMX/AVX512-BF16, else auto)",
    )
    parser.add_argument(
        "--predictors", default=",".join(TABLES + MODELS), help="replayed predictors, comma-separated"
    )
    args = parser.parse_args(argv)
    args.dtype = args.dtype or inference_dtype()
    out: Path = args.out
    sets = [s for s in args.sets.split(",") if s]
    predictors = [p for p in args.predictors.split(",") if p]
    started = time.time()
    for name in sets:
        stage(
            out,
            f"data-{name}",
            {"seed": args.seed, "limit": args.limit},
            lambda n=name: data_stage(out, n, args.seed, args.limit),
        )
    digests = {
        n: {s: file_digest(out / "data" / n / f"{s}.jsonl") for s in ("train", "val", "test")} for n in sets
    }
    stage(out, "chat", {"data": digests}, lambda: chat_stage(out, sets))
    train_key = {
        "data": digests,
        **{k: getattr(args, k) for k in ("seed", "max_steps", "batch", "learning_rate", "max_length")},
        **({"max_tokens_per_batch": args.max_tokens_per_batch} if args.max_tokens_per_batch else {}),
    }
    adapter_dir = out / "adapters" / _digest(train_key)
    trained = stage(
        out,
        "train",
        train_key,
        lambda: train_stage(out, args, adapter_dir),
        outputs=(adapter_dir / "adapter_model.safetensors",),
    )
    adapter = file_digest(adapter_dir / "adapter_model.safetensors")
    for name in sets:
        key = {
            "data": digests[name],
            "adapter": adapter,
            "predictors": predictors,
            "new": args.max_new_tokens,
            "dtype": args.dtype,
            "calibration": FIT_VERSION,  # a changed fit_platt refits verify and replays its rows
        }
        stage(out, f"replay-{name}", key, lambda n=name: replay_stage(out, n, predictors, args, adapter_dir))
    table = results(out, sets, predictors)
    gate = gates(out, sets)
    lines = markdown(table, predictors, gate)
    write_json(
        out / "results.json",
        {"train": trained, "table": table, "verify_gate": gate, "dtype": args.dtype}
        | {"key": _digest(train_key)},
    )
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    losses = [trained.get(k) for k in ("initial_eval_loss", "final_eval_loss")]
    before, after = (f"{v:.3f}" if isinstance(v, (int, float)) else "n/a" for v in losses)
    print(
        f"adapter: {trained['steps']} steps of {trained['batch']} conversations, "
        f"{trained['train_seconds']} s; val loss {before} → {after}"
    )
    print(f"total {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
