"""Resident memory update by update while training on real conversations, with and without handing
freed memory back to the system.

    .venv/bin/python benchmarks/real_data.py            # once: writes runs/real/chat/*.jsonl
    .venv/bin/python benchmarks/train_memory.py --steps 10
    .venv/bin/python benchmarks/train_memory.py --steps 10 --keep-freed   # the allocator keeps it

Trains the embedded SmolLM2-135M on ``runs/real/chat/train.conversation.jsonl`` with the settings
of ``benchmarks/real_data.py`` (4 conversations per update, the automatic token budget, bf16
autocast where the CPU has it), no validation pass, and prints after every update the process's
resident memory (VmRSS) and its peak so far (VmHWM), beside the plan's estimated peak. With
``--keep-freed`` the trainer's release of freed memory after each update (glibc ``malloc_trim``,
``specdecode.train.batching.release_freed_memory``) is switched off, as it was before 2026-11-30.
Linux only (reads ``/proc/self/status``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def resident_gib() -> dict[str, float]:
    """VmRSS and VmHWM of this process, GiB."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 2**20
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/real"), help="real_data.py's output folder")
    parser.add_argument("--steps", type=int, default=10, help="updates to train")
    parser.add_argument("--keep-freed", action="store_true", help="do not hand freed memory back")
    args = parser.parse_args(argv)
    from transformers import TrainerCallback

    from specdecode.train import TrainConfig, batching
    from specdecode.train.sft import setup

    if args.keep_freed:
        batching.release_freed_memory = lambda: False  # the callback looks it up at each call
    chat = args.run / "chat"
    out = Path(tempfile.mkdtemp(prefix="train-memory-"))
    config = TrainConfig(
        train_file=str(chat / "train.conversation.jsonl"),
        val_file=str(chat / "val.conversation.jsonl"),
        output_dir=str(out / "adapter"),
        model_name="smollm2-135m",
        form="conversation",
        registry=str(args.run / "data" / "tau-retail" / "tools.yaml"),
        max_steps=args.steps,
        eval_steps=args.steps + 1,  # no validation pass inside the run
        save_steps=args.steps + 1,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        learning_rate=1e-3,
        max_length=4096,
        logging_steps=1,
        seed=0,
    )
    started = time.perf_counter()
    rows: list[tuple[int, float, float, float]] = []

    class Probe(TrainerCallback):
        def on_step_end(self, _args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            m = resident_gib()
            rows.append((state.global_step, time.perf_counter() - started, m["VmRSS"], m["VmHWM"]))

    try:
        run = setup(config)
        run.trainer.add_callback(Probe())  # after the release callback: sees what it left
        started = time.perf_counter()
        run.trainer.train()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    plan = run.memory
    assert plan is not None
    print(
        f"{'kept by the allocator' if args.keep_freed else 'freed memory handed back'}; "
        f"micro-batches <= {plan.max_tokens_per_batch} tokens, {plan.checkpointed_layers} of "
        f"{plan.layers} layers checkpointed, estimated peak {plan.estimated_peak_gib} GiB"
    )
    print("| update | seconds | resident after it (GiB) | peak so far (GiB) |")
    print("|---:|---:|---:|---:|")
    for step, seconds, rss, hwm in rows:
        print(f"| {step} | {seconds:.0f} | {rss:.2f} | {hwm:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
