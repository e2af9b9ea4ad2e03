"""Training throughput: the prototype's recipe vs. `specdecode train`, same data, same model, one run.

prototype  — HF `Trainer`, its plain prompt strings (`<|user|>\\n…\\n<|assistant|>\\n…` as text, no chat
             template), `DataCollatorForSeq2Seq` padding, loss over the full logits.
specdecode — TRL `SFTTrainer` via `specdecode.train`, chat template, assistant-only labels,
             padding-free batches, LM head only on trained positions (CPU); once in fp32 and once
             with the default `--mixed_precision auto` (bf16 autocast where the CPU has AMX /
             AVX512-BF16; weights stay fp32).

Both: LoRA r=16/alpha=32 on all linear layers, the same steps-form examples, the same batch size.
Each recipe runs in its own subprocess so that peak memory (max RSS) is its own.
Throughput counts real (non-pad) tokens per second of `trainer.train()`.

    .venv/bin/python benchmarks/train_throughput.py [--model smollm2-135m] [--examples 96]

`--set real`: real-length conversations (the τ-bench conversation-form training data written by
`benchmarks/real_data.py`, or any chat JSONL given with `--chat`), updates of 4 conversations:

batch 4 padded   — today's default before token budgets: a batch of 4 conversations padded to
                   the longest, no gradient checkpointing (what `--max-tokens-per-batch 0` did,
                   without the memory plan);
token budget     — `specdecode train` as it is now: the same updates cut into micro-batches within
                   the automatic budget, gradient checkpointing on just enough layers.

    .venv/bin/python benchmarks/train_throughput.py --set real [--min-tokens 1500] [--max-tokens 4096]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _examples(n_traces: int) -> list:
    from specdecode import load_registry
    from specdecode.data import convert, synthesize

    return convert(synthesize(n_traces, seed=1), "steps", load_registry("tools4"))


def _lora():
    from peft import LoraConfig

    return LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )


def run_prototype(model_path: str, steps: int, batch: int, n_traces: int, out: str) -> dict:
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from specdecode.models import load_model, load_tokenizer

    tok = load_tokenizer(model_path)
    rows = []
    for chat in _examples(n_traces):
        prompt = "\n".join(m.content for m in chat.messages[:-1])
        text = f"<|user|>\n{prompt}\n<|assistant|>\n{chat.messages[-1].content}"
        enc = tok(text, truncation=True, max_length=2048)
        rows.append(
            {
                "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"],
                "labels": list(enc["input_ids"]),
            }
        )
    model = get_peft_model(load_model(model_path), _lora())
    args = TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        max_steps=steps,
        learning_rate=2e-4,
        logging_steps=steps,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        data_collator=DataCollatorForSeq2Seq(tok, padding=True),
    )
    return _timed(trainer, rows, steps, batch)


def run_specdecode(
    model_path: str,
    steps: int,
    batch: int,
    n_traces: int,
    out: str,
    precision: str,
    padding_free: bool = True,
) -> dict:
    from datasets import Dataset
    from peft import get_peft_model

    from specdecode.models import load_model, load_tokenizer
    from specdecode.settings import TrainConfig
    from specdecode.train.data import DataReport, build_examples
    from specdecode.train.loss import speculator_trainer as _speculator_trainer
    from specdecode.train.sft import _training_args

    tok = load_tokenizer(model_path)
    rows = build_examples(tok, _examples(n_traces), 2048, DataReport("bench"))
    config = TrainConfig(
        train_file="-",
        output_dir=out,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        max_steps=steps,
        eval_steps=10**6,
        save_steps=10**6,
        logging_steps=steps,
        seed=0,
        mixed_precision=precision,
        padding_free="on" if padding_free else "off",
    )
    args = _training_args(config)
    args.eval_strategy, args.save_strategy, args.load_best_model_at_end, args.disable_tqdm = (
        "no",
        "no",
        False,
        True,
    )
    model = get_peft_model(load_model(model_path), _lora())
    trainer = _speculator_trainer()(
        model=model, args=args, processing_class=tok, train_dataset=Dataset.from_list(rows)
    )
    return _timed(trainer, rows, steps, batch)


def _timed(trainer, rows: list, steps: int, batch: int) -> dict:
    # Same sampler seed → the same examples in the same order for both recipes would need the same
    # dataset length; both datasets have one row per example, so the seeded order is the same.
    order = list(iter(trainer._get_train_sampler(trainer.train_dataset)))[: steps * batch]
    tokens = sum(len(rows[i]["input_ids"]) for i in order)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "tokens": tokens,
        "tokens_per_s": tokens / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_loss": trainer.state.log_history[-2].get("loss"),
    }


# name → (function, micro-batch size). All see the same examples, one optimizer step per micro-batch
# (gradient accumulation does not change tokens/s). The prototype's defaults are micro-batch 2 ×
# accumulation 8 = 16 examples per update; `specdecode train --per_device_train_batch_size 8
# --gradient_accumulation_steps 2` keeps that update size with length-grouped micro-batches.
RECIPES = {
    "prototype (micro-batch 2)": (run_prototype, 2),
    "specdecode padding-free (micro-batch 2)": (lambda *a: run_specdecode(*a, precision="auto"), 2),
    "specdecode length-grouped (micro-batch 8)": (
        lambda *a: run_specdecode(*a, precision="auto", padding_free=False),
        8,
    ),
}


def _real_rows(chat: str, model_path: str, lo: int, hi: int, n: int) -> tuple[list, list]:
    """Conversation-form training rows of ``lo``..``hi`` tokens (the first ``n``) and the chat
    records they came from."""
    from specdecode.jsonl import read_records
    from specdecode.models import load_tokenizer
    from specdecode.records import ChatRecord
    from specdecode.train.data import DataReport, build_examples

    tok = load_tokenizer(model_path)
    records, rows = [], []
    for record in read_records(chat, ChatRecord):
        built = build_examples(tok, [record], 4096, DataReport("bench"))
        if len(built) == 1 and lo <= len(built[0]["input_ids"]) <= hi:
            records.append(record)
            rows.append(built[0])
        if len(rows) >= n:
            break
    return records, rows


def run_real(recipe: str, model_path: str, chat: str, lo: int, hi: int, n: int, out: str) -> dict:
    """One real-length recipe (see the module docstring), updates of 4 conversations."""
    import torch
    from datasets import Dataset
    from peft import get_peft_model

    from specdecode.jsonl import write_jsonl
    from specdecode.models import load_model, load_tokenizer
    from specdecode.settings import TrainConfig
    from specdecode.train.loss import speculator_trainer
    from specdecode.train.sft import _training_args, setup

    records, rows = _real_rows(chat, model_path, lo, hi, n)
    steps = len(rows) // 4
    config = TrainConfig(
        train_file=str(Path(out) / "train.jsonl"),
        val_file=str(Path(out) / "val.jsonl"),
        output_dir=str(Path(out) / "run"),
        model_name=model_path,
        form="conversation",
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        max_steps=steps,
        max_length=4096,
        eval_steps=10**6,
        save_steps=10**6,
        logging_steps=steps,
        seed=0,
        max_tokens_per_batch=None if recipe == "token budget" else 0,
    )
    write_jsonl(config.train_file, records)
    write_jsonl(config.val_file, records[:1])
    if recipe == "token budget":
        trainer = setup(config).trainer
    else:  # today's default before the memory plan: padded batches of 4, nothing checkpointed
        tok = load_tokenizer(model_path)
        args = _training_args(config)
        args.eval_strategy, args.save_strategy, args.load_best_model_at_end = "no", "no", False
        trainer = speculator_trainer()(
            model=get_peft_model(load_model(model_path), _lora()),
            args=args,
            processing_class=tok,
            train_dataset=Dataset.from_list(rows),
        )
    trainer.args.eval_strategy, trainer.args.save_strategy = "no", "no"
    trainer.args.load_best_model_at_end, trainer.args.disable_tqdm = False, True
    result = _timed(trainer, rows, steps, 4)
    result["conversations"], result["steps"] = len(rows), steps
    result["longest"] = max(len(r["input_ids"]) for r in rows)
    result["plan"] = getattr(trainer, "token_budget", None)
    result["checkpointed_layer_share"] = (
        round(trainer.checkpointed_passes / trainer.layer_passes, 3)
        if getattr(trainer, "layer_passes", 0)
        else 0.0
    )
    del torch
    return result


def main_real(opts: argparse.Namespace) -> None:
    from specdecode.models import mixed_precision, resolve_model

    model_path = resolve_model(opts.model)
    if opts.recipe:
        with tempfile.TemporaryDirectory() as out:
            result = run_real(
                opts.recipe, model_path, opts.chat, opts.min_tokens, opts.max_tokens, opts.examples, out
            )
            print(json.dumps(result))
        return
    results = {}
    for recipe in ("batch 4 padded", "token budget"):
        cmd = [
            sys.executable,
            __file__,
            "--set",
            "real",
            "--recipe",
            recipe,
            "--model",
            opts.model,
            "--chat",
            opts.chat,
            "--examples",
            str(opts.examples),
            "--min-tokens",
            str(opts.min_tokens),
            "--max-tokens",
            str(opts.max_tokens),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            results[recipe] = {
                "error": f"exit {proc.returncode}"
                + (" (killed: out of memory?)" if proc.returncode < 0 else "")
            }
            continue
        results[recipe] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"model {opts.model}; conversations of {opts.min_tokens}-{opts.max_tokens} tokens from {opts.chat}; "
        f"updates of 4; auto precision = {mixed_precision('auto')}; "
        f"{platform.machine()}, {os.cpu_count()} cores"
    )
    print(
        "| recipe | conversations | longest | tokens | seconds | tokens/s | vs padded | peak RSS (MiB) "
        "| checkpointed |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = results.get("batch 4 padded", {}).get("tokens_per_s")
    for name, r in results.items():
        if "error" in r:
            print(f"| {name} | – | – | – | – | – | – | {r['error']} | – |")
            continue
        ratio = f"{r['tokens_per_s'] / base:.2f}×" if base else "–"
        print(
            f"| {name} | {r['conversations']} | {r['longest']} | {r['tokens']} | {r['seconds']:.1f} | "
            f"{r['tokens_per_s']:.0f} | {ratio} | {r['peak_rss_mib']:.0f} | "
            f"{r['checkpointed_layer_share']:.0%} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--examples", type=int, default=96, help="Training examples each recipe sees.")
    parser.add_argument("--n-traces", type=int, default=40)
    parser.add_argument("--recipe", help=argparse.SUPPRESS)
    parser.add_argument("--set", choices=["synthetic", "real"], default="synthetic")
    parser.add_argument(
        "--chat", default="runs/real/chat/train.conversation.jsonl", help="--set real: chat JSONL"
    )
    parser.add_argument("--min-tokens", type=int, default=1500)
    parser.add_argument("--max-tokens", type=int, default=4096)
    opts = parser.parse_args()
    if opts.set == "real":
        opts.examples = opts.examples if opts.examples != 96 else 16
        main_real(opts)
        return
    from specdecode.models import mixed_precision, resolve_model

    model_path = resolve_model(opts.model)
    if opts.recipe:
        fn, batch = RECIPES[opts.recipe]
        with tempfile.TemporaryDirectory() as out:
            print(json.dumps(fn(model_path, opts.examples // batch, batch, opts.n_traces, out)))
        return
    results = {}
    for recipe in RECIPES:
        cmd = [
            sys.executable,
            __file__,
            "--recipe",
            recipe,
            "--model",
            opts.model,
            "--examples",
            str(opts.examples),
            "--n-traces",
            str(opts.n_traces),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[recipe] = json.loads(proc.stdout.strip().splitlines()[-1])
    base = results["prototype (micro-batch 2)"]["tokens_per_s"]
    print(
        f"model {opts.model}; {opts.examples} examples per recipe; auto precision = "
        f"{mixed_precision('auto')}; {platform.machine()}, {os.cpu_count()} cores"
    )
    print("| recipe | tokens | seconds | tokens/s | speed-up | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['tokens']} | {r['seconds']:.1f} | {r['tokens_per_s']:.0f} | "
            f"{r['tokens_per_s'] / base:.2f}× | {r['peak_rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
