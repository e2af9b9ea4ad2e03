"""Conversation form vs. steps form for a next-call speculator: same targets, same model, one run.

Two data sets:

demo  — `data synth --n 160 --seed 0` (tools4), the demo's split (stratified, seed 0);
long  — a long-prompt set built here: two synthetic tools17 questions chained into one
        (6–8 calls), 28 tools offered (tools17 + 11 more), observations padded to 1,500
        characters of search-result text (prompts clip them at 1,600), so step prompts are
        ~800–2,500 tokens (~1,600 on average) and a conversation ~2,500.

For each set, both forms train a LoRA on the embedded SmolLM2-135M (`specdecode.train.train`,
default recipe: lr, r=16, bf16 autocast where the CPU has it) for the same number of optimizer
steps with about the same number of target calls per step (steps: B step examples; conversation:
B / mean-calls conversations). Measured:

* tokens processed by the training steps (non-pad tokens of every micro-batch);
* training wall time (the trainer's `training_step` calls: forward + backward, timed by a
  wrapper; data preparation, checkpoint saves and evaluations are not counted);
* validation loss on the SAME validation steps for both: mean cross-entropy over the target call
  tokens (+ end-of-turn) only. For the steps model, on the steps-form validation examples; for the
  conversation model, on the same steps with conversation prompts (`step_examples(...,
  "conversation")`), computed in one pass per validation conversation — the same numbers, since the
  step prompt is a token prefix of the conversation and each call's trained tokens are identical
  (tests/test_conversation_form.py) — at every checkpoint, to find the wall time at which it
  first reaches the steps model's final validation loss;
* next-call first_call_exact on the same test steps (`specdecode.evaluate`, HF backend, greedy),
  each model prompted in the form it was trained on (`load_examples(..., prompt_form=...)`), the
  conversation model at the checkpoint that reached the steps loss (its last one otherwise).

    flock /tmp/specdecode-model.lock .venv/bin/python benchmarks/conversation_form.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import time
from pathlib import Path
from typing import Any

from specdecode.records import ToolSpec

EXTRA_TOOLS = [
    ("calendar.lookup", "Look up the date of a named event in a public calendar.", {"event": "string"}),
    (
        "maps.distance",
        "Road distance in km between two places.",
        {"origin": "string", "destination": "string"},
    ),
    ("weather.history", "Daily weather history for a place and date.", {"place": "string", "date": "string"}),
    ("translate", "Translate a text into a target language.", {"text": "string", "target": "string"}),
    (
        "unit_convert",
        "Convert a quantity between units.",
        {"value": "number", "from": "string", "to": "string"},
    ),
    ("news.search", "Search news articles, newest first.", {"query": "string", "since": "string"}),
    ("arxiv.search", "Search arXiv preprints by keywords.", {"query": "string", "max_results": "integer"}),
    ("github.search", "Search public code repositories.", {"query": "string", "language": "string"}),
    ("email.read", "Read an email from the user's inbox by id.", {"message_id": "string"}),
    ("sql.query", "Run a read-only SQL query on the user's database.", {"query": "string"}),
    ("pdf.extract", "Extract the text of pages of a PDF file.", {"path": "string", "pages": "string"}),
]
FILLER = [
    "archive",
    "record",
    "listing",
    "index",
    "snippet",
    "source",
    "page",
    "section",
    "table",
    "entry",
    "official",
    "municipal",
    "survey",
    "report",
    "annual",
    "statistics",
    "edition",
    "revised",
    "figure",
    "note",
    "published",
    "according",
    "dataset",
    "summary",
    "overview",
    "history",
    "district",
    "region",
    "council",
    "office",
    "registry",
    "volume",
    "chapter",
]


def long_registry():
    from specdecode.registry import Registry, load_registry

    extra = [
        ToolSpec(
            name=name,
            description=description,
            parameters={
                "type": "object",
                "properties": {k: {"type": v} for k, v in params.items()},
                "required": list(params)[:1],
            },
            read_only=True,
        )
        for name, description, params in EXTRA_TOOLS
    ]
    return Registry(name="tools28", tools=(*load_registry("tools17").tools, *extra))


def long_traces(n: int, seed: int) -> list:
    """``n`` chained questions of 6–8 calls with long observations."""
    from specdecode.data import synthesize
    from specdecode.records import TraceRecord

    pool = [t for t in synthesize(6 * n, seed=seed, registry="tools17") if len(t.trace) >= 3]
    rng = random.Random(seed)
    out = []
    i = 0
    while len(out) < n and i + 1 < len(pool):
        a, b = pool[i], pool[i + 1]
        i += 2
        steps = [s.model_dump() for s in a.trace if s.action.tool_name != "final_answer"]
        steps += [s.model_dump() for s in b.trace]
        if not 6 <= len(steps) <= 8:
            i -= 1
            continue
        for s in steps:
            words = " ".join(rng.choice(FILLER) for _ in range(220))
            s["observation"] = ((s.get("observation") or "") + " " + words)[:1500]
        out.append(
            TraceRecord(
                id=f"long-{len(out):03d}",
                question=f"{a.question} Then, separately: {b.question}",
                level=3,
                trace=steps,
                final_answer=b.final_answer,
            )
        )
    return out


def demo_split() -> dict[str, list]:
    from specdecode.data import synthesize
    from specdecode.gaia import stratified_split
    from specdecode.records import TraceRecord

    rows = [t.model_dump(exclude_none=True) for t in synthesize(160, seed=0)]
    return {k: [TraceRecord.model_validate(r) for r in v] for k, v in stratified_split(rows, seed=0).items()}


# ----------------------------------------------------------------------------- measurement
class StepTimer:
    """Wraps ``Trainer.training_step``: seconds and non-pad tokens per optimizer step."""

    def __init__(self) -> None:
        from transformers import Trainer

        self.original = Trainer.training_step
        self.rows: list[tuple[int, float, int]] = []
        timer = self

        def timed(trainer, model, inputs, *args, **kwargs):
            mask = inputs.get("attention_mask")
            tokens = int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
            started = time.perf_counter()
            loss = timer.original(trainer, model, inputs, *args, **kwargs)
            timer.rows.append((trainer.state.global_step + 1, time.perf_counter() - started, tokens))
            return loss

        Trainer.training_step = timed

    def reset(self) -> None:
        self.rows = []

    def at(self, step: int) -> tuple[float, int]:
        """Cumulative (seconds, tokens) up to and including optimizer step ``step``."""
        rows = [r for r in self.rows if r[0] <= step]
        return sum(r[1] for r in rows), sum(r[2] for r in rows)


def target_loss(model: Any, tokenizer: Any, chats: list) -> float:
    """Token-weighted mean cross-entropy over the trained tokens of ``chats``."""
    import torch
    import torch.nn.functional as F

    from specdecode.train.data import IGNORE, chat_dicts, tokenize_example

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for chat in chats:
            ex = tokenize_example(tokenizer, *chat_dicts(chat))
            ids = torch.tensor([ex["input_ids"]])
            labels = torch.tensor(ex["labels"][1:])
            keep = labels != IGNORE
            hidden = model.get_base_model().model(input_ids=ids).last_hidden_state[0, :-1][keep]
            logits = model.get_output_embeddings()(hidden).float()
            total += float(F.cross_entropy(logits, labels[keep], reduction="sum"))
            count += int(keep.sum())
    return total / max(count, 1)


def checkpoint_losses(run_dir: Path, steps: list[int], chats: list) -> dict[int, float]:
    from peft import PeftModel

    from specdecode.models import load_model, load_tokenizer, resolve_model

    path = resolve_model("smollm2-135m")
    tokenizer = load_tokenizer(path)
    out = {}
    for step in steps:
        model = PeftModel.from_pretrained(load_model(path), str(run_dir / f"checkpoint-{step}"))
        out[step] = target_loss(model, tokenizer, chats)
    return out


def exact_match(adapter: Path, test_file: Path, registry, options, prompt_form: str, out: Path) -> dict:
    from specdecode.evaluate.backends import make_backend
    from specdecode.evaluate.run import evaluate, generation_config, load_examples

    examples = load_examples(test_file, "next-call", registry, options, prompt_form=prompt_form)
    backend = make_backend("hf", "smollm2-135m", str(adapter))
    config = generation_config("next-call", 64, 8, 1.0)
    summary = evaluate(backend, examples, out, registry, "next-call", config, overwrite=True)
    metrics = summary["metrics"]
    return {
        "first_call_exact": metrics["first_call_exact"],
        "first_call_name": metrics["first_call_name"],
        "n": len(examples),
        "seconds": summary.get("seconds"),
    }


def run_set(name: str, split: dict, registry, options, args, timer: StepTimer, root: Path) -> dict:
    from specdecode.data.convert import convert, step_examples
    from specdecode.jsonl import write_jsonl
    from specdecode.train import TrainConfig, train

    root = root / name
    root.mkdir(parents=True, exist_ok=True)
    train_traces, val_traces, test_traces = split["train"], split["val"], split["test"]
    mean_calls = sum(len(t.trace) for t in train_traces) / len(train_traces)
    batch_steps = args.batch if name == "demo" else args.long_batch
    batch_conv = max(1, round(batch_steps / mean_calls))
    max_steps = args.steps if name == "demo" else args.long_steps
    every = max(1, max_steps // args.checkpoints)
    files = {
        "steps": convert(train_traces, "steps", registry, options),
        "conversation": convert(train_traces, "conversation", registry, options),
    }
    val_steps = {f: step_examples(val_traces, registry, options, f) for f in ("steps", "conversation")}
    val_conversations = convert(val_traces, "conversation", registry, options)
    write_jsonl(root / "test.jsonl", [t.model_dump(exclude_none=True) for t in test_traces])
    # the trainer's own validation: one short example (the losses reported are computed below)
    write_jsonl(root / "val-tiny.jsonl", [val_steps["steps"][0].model_dump(exclude_none=True)])
    result: dict[str, Any] = {
        "train_traces": len(train_traces),
        "val_steps": len(val_steps["steps"]),
        "test_steps": sum(len(t.trace) for t in test_traces),
        "mean_calls": round(mean_calls, 2),
    }
    for form in ("steps", "conversation"):
        write_jsonl(root / f"train-{form}.jsonl", [c.model_dump(exclude_none=True) for c in files[form]])
        batch = batch_steps if form == "steps" else batch_conv
        # Long sequences: micro-batches of `micro` with gradient accumulation, the same update size
        # (a padded batch of 7 prompts of ~2,500 tokens ran out of 24 GiB).
        micro = batch if name == "demo" else min(batch, args.long_micro_batch)
        accumulate = -(-batch // micro)
        save = max_steps if form == "steps" else every
        timer.reset()
        started = time.perf_counter()
        summary = train(
            TrainConfig(
                train_file=str(root / f"train-{form}.jsonl"),
                val_file=str(root / "val-tiny.jsonl"),
                output_dir=str(root / form),
                model_name="smollm2-135m",
                form=form,
                max_length=args.max_length,
                max_steps=max_steps,
                per_device_train_batch_size=micro,
                gradient_accumulation_steps=accumulate,
                learning_rate=args.lr,
                eval_steps=save,
                save_steps=save,
                save_total_limit=100,
                logging_steps=1,
                warmup_ratio=0.0,
            )
        )
        total = time.perf_counter() - started
        steps_saved = sorted(int(p.name.split("-")[1]) for p in (root / form).glob("checkpoint-*"))
        # the conversation model's loss, pass per conversation (= the conversation-prompt step examples)
        chats = val_steps["steps"] if form == "steps" else val_conversations
        losses = checkpoint_losses(root / form, steps_saved, chats)
        seconds, tokens = timer.at(max_steps)
        result[form] = {
            "batch": batch,
            "steps": max_steps,
            "train_seconds": round(seconds, 1),
            "train_tokens": tokens,
            "run_seconds": round(total, 1),
            "val_loss": {s: round(v, 4) for s, v in losses.items()},
            "time_at": {s: round(timer.at(s)[0], 1) for s in steps_saved},
            "tokens_at": {s: timer.at(s)[1] for s in steps_saved},
            "data": summary.get("data"),
        }
    target = result["steps"]["val_loss"][max_steps]
    conv = result["conversation"]
    reached = next((s for s in sorted(conv["val_loss"]) if conv["val_loss"][s] <= target), None)
    result["target_val_loss"] = target
    result["conversation_reached_at_step"] = reached
    if reached is not None:
        result["speedup_time_to_loss"] = round(result["steps"]["train_seconds"] / conv["time_at"][reached], 2)
        result["token_ratio_to_loss"] = round(result["steps"]["train_tokens"] / conv["tokens_at"][reached], 2)
    result["token_ratio_same_steps"] = round(result["steps"]["train_tokens"] / conv["train_tokens"], 2)
    conv_step = reached or max(conv["val_loss"])
    for form, step in (("steps", max_steps), ("conversation", conv_step)):
        adapter = root / form / f"checkpoint-{step}"
        result[form]["eval_checkpoint"] = step
        try:
            result[form]["exact"] = exact_match(
                adapter, root / "test.jsonl", registry, options, form, root / f"eval-{form}.jsonl"
            )
        except Exception as exc:  # keep the training numbers even if scoring fails
            result[form]["exact"] = {"error": repr(exc), "first_call_exact": None}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-conversation")
    parser.add_argument("--sets", default="demo,long")
    parser.add_argument("--steps", type=int, default=12, help="demo: optimizer steps")
    parser.add_argument("--batch", type=int, default=8, help="demo: step examples per step")
    parser.add_argument("--long-steps", type=int, default=6)
    parser.add_argument("--long-batch", type=int, default=7)
    parser.add_argument("--long-micro-batch", type=int, default=1, help="long: micro-batch (accumulated)")
    parser.add_argument("--long-train", type=int, default=8, help="long: training conversations")
    parser.add_argument("--long-val", type=int, default=2)
    parser.add_argument("--long-test", type=int, default=2)
    parser.add_argument("--checkpoints", type=int, default=4, help="conversation checkpoints per run")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=4096)
    args = parser.parse_args()

    from specdecode import load_registry
    from specdecode.prompts import PromptOptions

    root = Path(args.out)
    timer = StepTimer()
    started = time.perf_counter()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu_flags": subprocess.run(
            "grep -ow 'avx512_bf16\\|amx_tile' /proc/cpuinfo | sort -u | tr '\\n' ' '",
            shell=True,
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "args": vars(args),
    }
    sets = args.sets.split(",")
    root.mkdir(parents=True, exist_ok=True)
    if "demo" in sets:
        results["demo"] = run_set(
            "demo", demo_split(), load_registry("tools4"), PromptOptions(), args, timer, root
        )
        (root / "results.json").write_text(json.dumps(results, indent=2))
    if "long" in sets:
        n = args.long_train + args.long_val + args.long_test
        traces = long_traces(n, seed=0)
        split = {
            "train": traces[: args.long_train],
            "val": traces[args.long_train : args.long_train + args.long_val],
            "test": traces[args.long_train + args.long_val :],
        }
        options = PromptOptions(max_observation_chars=1600)
        results["long"] = run_set("long", split, long_registry(), options, args, timer, root)
    results["seconds"] = round(time.perf_counter() - started, 1)
    (root / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    for name in sets:
        r = results[name]
        s, c = r["steps"], r["conversation"]
        print(
            f"{name}: steps {s['train_tokens']} tok {s['train_seconds']} s, loss {r['target_val_loss']:.4f}; "
            f"conversation {c['train_tokens']} tok {c['train_seconds']} s; reached at step "
            f"{r['conversation_reached_at_step']} speed-up {r.get('speedup_time_to_loss')}; exact "
            f"{s['exact']['first_call_exact']} vs {c['exact']['first_call_exact']}"
        )
    assert not math.isnan(results["seconds"])


if __name__ == "__main__":
    main()
