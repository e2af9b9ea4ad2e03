"""Micro-batches by token budget: the budget holds, the plan is predictable, an update computes the
same thing as the padded batch (same validation curve), and a resumed run keeps its plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli, tiny_train_args
from specdecode.train.batching import (
    GIB,
    ModelShape,
    TokenBudgetCollator,
    pack_by_tokens,
    plan_memory,
    release_freed_memory,
)

SMOL = ModelShape(layers=30, hidden=576, intermediate=1536, heads=9, vocab=49152, parameters=134_515_008)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=40), st.integers(1, 9000), st.booleans())
def test_budget_is_never_exceeded(lengths: list[int], budget: int, padded: bool) -> None:
    groups = pack_by_tokens(lengths, budget, padded)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        size = len(group) * max(lengths[i] for i in group) if padded else sum(lengths[i] for i in group)
        # only an example longer than the budget may break it, and then it is alone
        assert size <= budget or (len(group) == 1 and lengths[group[0]] > budget)


def test_collator_counts_what_it_did() -> None:
    collate = TokenBudgetCollator(lambda rows: {"n": len(rows)}, budget=10)
    batch = collate([{"input_ids": [0] * n} for n in (4, 12, 3, 5)])
    assert [mb["n"] for mb in batch["micro_batches"]] == [1, 2, 1]  # 12 alone, 5+4 padded to 10, 3
    assert batch["num_examples"].shape[0] == 4
    assert collate.oversized == 1 and collate.largest == 12 and collate.micro_batches == 3


def _plan(**kw: object):
    args = dict(
        max_length=4096,
        longest_example=4096,
        batch_size=4,
        requested_budget=None,
        checkpointing=False,
        free_bytes=24 * GIB,
        on_gpu=False,
    )
    args.update(kw)
    return plan_memory(SMOL, **args)  # type: ignore[arg-type]


def test_memory_plan_on_small_and_large_machines() -> None:
    # 22 GiB free (a 24 GB machine): long examples alone, a few layers checkpointed, under 8 GB
    roomy = _plan(free_bytes=22 * GIB)
    assert roomy.max_tokens_per_batch == 4096
    assert 0 < roomy.checkpointed_layers < 30 and roomy.estimated_peak_gib <= 7.5
    assert f"up to {roomy.checkpointed_layers} of 30 layers" in roomy.reason
    assert roomy.layers_for(1500, 1500) == 0 and roomy.layers_for(4096, 4096) == roomy.checkpointed_layers
    short = _plan(free_bytes=22 * GIB, longest_example=600)  # the demo's lengths: packed, no checkpointing
    assert short.max_tokens_per_batch == 1800 and short.checkpointed_layers == 0  # 3 of 600 tokens
    # a laptop with 12 GiB free: every layer checkpointed (and said), one example per micro-batch
    laptop = _plan(free_bytes=12 * GIB)
    assert laptop.checkpointed_layers == 30 and laptop.max_tokens_per_batch == 4096
    assert "every layer checkpointed" in laptop.reason and laptop.estimated_peak_gib < 0.8 * 12
    # asking for checkpointing checkpoints every layer
    assert _plan(checkpointing=True).checkpointed_layers == 30
    # nothing fits: one line that says what to change
    with pytest.raises(ValueError, match="lower --max-length") as info:
        _plan(free_bytes=4 * GIB)
    assert "\n" not in str(info.value)
    # an explicit budget is kept; 0 = padded batches as before
    assert _plan(requested_budget=3000).max_tokens_per_batch == 3000
    off = _plan(requested_budget=0, longest_example=500)
    assert off.max_tokens_per_batch is None and off.checkpointed_layers == 0
    with pytest.raises(ValueError, match="--max-tokens-per-batch"):
        _plan(requested_budget=0, batch_size=8, free_bytes=22 * GIB)


def _tiny_args(tiny: Path, split: Path, out: Path, *extra: str) -> list[str]:
    return tiny_train_args(
        tiny,
        split,
        out,
        *(
            "--form",
            "conversation",
            "--per_device_train_batch_size",
            "4",
            "--gradient_accumulation_steps",
            "2",
        ),
        *("--max_steps", "8", "--eval_steps", "4", "--save_steps", "4", "--learning_rate", "2e-3"),
        *("--lora_dropout", "0", *extra),
    )


def test_token_budget_trains_the_same_updates(tiny_qwen3: Path, synth_split: Path, tmp_path: Path) -> None:
    """Same seed and update size: padded batches of 4 vs micro-batches of at most 400 tokens (one
    or two conversations each) give the same training and validation losses, within noise."""
    padded, budget = tmp_path / "padded", tmp_path / "budget"
    run_cli(*_tiny_args(tiny_qwen3, synth_split, padded, "--max-tokens-per-batch", "0"), check=True)
    run_cli(*_tiny_args(tiny_qwen3, synth_split, budget, "--max-tokens-per-batch", "400"), check=True)
    curves = {p: json.loads((p / "training_curves.json").read_text()) for p in (padded, budget)}
    summaries = {p: json.loads((p / "training_summary.json").read_text()) for p in (padded, budget)}
    for kind in ("train", "validation"):
        a, b = curves[padded][kind], curves[budget][kind]
        assert [r["step"] for r in a] == [r["step"] for r in b]
        for x, y in zip(a, b):
            assert y["loss"] == pytest.approx(x["loss"], rel=2e-3, abs=2e-3), (kind, x["step"])
    memory = summaries[budget]["memory"]
    assert memory["max_tokens_per_batch"] == 400
    assert memory["micro_batches"] > 8 * 2  # batches really were cut
    assert memory["largest_micro_batch_tokens"] <= 400 or memory["examples_over_budget"] > 0
    assert summaries[padded]["memory"]["max_tokens_per_batch"] is None
    assert memory["measured_peak_gib"] > 0 and memory["estimated_peak_gib"] > 0
    # a resumed run keeps the stored plan, whatever budget the defaults would pick now
    stored = json.loads((budget / "memory_plan.json").read_text())
    assert stored["max_tokens_per_batch"] == 400
    resumed = run_cli(
        *_tiny_args(tiny_qwen3, synth_split, budget, "--max_steps", "10", "--resume"), check=True
    )
    assert "micro-batches ≤ 400 tokens" in resumed.stderr
    again = json.loads((budget / "training_summary.json").read_text())
    assert again["global_step"] == 10 and again["memory"]["max_tokens_per_batch"] == 400


def _resident_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc (Linux)")
def test_freed_memory_goes_back_to_the_system() -> None:
    # Many small blocks (below glibc's mmap threshold, so from the heap), every other one freed:
    # the holes stay resident until the allocator is told to trim.
    blocks = [bytearray(16_000) for _ in range(20_000)]  # ~320 MB, written (resident)
    del blocks[::2]
    held = _resident_mib()
    if not release_freed_memory():
        pytest.skip("no glibc malloc_trim here")
    assert held - _resident_mib() > 100, "freed heap memory stayed resident"
    del blocks
