"""Micro-batches by token budget, and a memory plan a user can predict.

Real agent conversations range from 200 to 4,000 tokens, so a batch size counted in examples says
nothing about memory: four long conversations padded to the longest took 20 GB on the 135M demo
model. Here the *update* stays what the user asked for (``per_device_train_batch_size ×
gradient_accumulation_steps`` examples, drawn by the trainer's own sampler, so the same seed gives
the same updates), and each batch of the sampler is cut into micro-batches whose padded size
(examples × longest) stays within ``max_tokens_per_batch``. Gradients of the micro-batches are
accumulated with the loss normalised by the update's trained tokens, so an update computes the
same gradient as the padded batch would, within floating-point noise, in bounded memory.

The default budget comes from the memory that is free at start (``plan_memory``): an estimate of
activation bytes per token from the model's shape, measured against real runs (BENCHMARKS.md);
gradient checkpointing is switched on when one example of ``max_length`` tokens would not fit
without it, and a run that cannot fit one example even then stops before training.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

GIB = 1024**3
# What the plan aims to use of the memory that is free at start (the rest: the tokenizer, the data,
# evaluation, the allocator's slack, other programs): a third keeps a 24 GB machine under 8 GB.
# When even full checkpointing does not fit in that, up to HARD_SHARE is used before giving up.
USABLE_SHARE = 1 / 3
HARD_SHARE = 0.8
# On a CPU, throughput stops growing well before memory runs out (the matmuls are already large),
# so the automatic budget is capped; on a GPU larger micro-batches keep paying.
CPU_BUDGET_CAP = 4096
GPU_BUDGET_CAP = 65536


def pack_by_tokens(lengths: Sequence[int], budget: int, padded: bool = True) -> list[list[int]]:
    """Indices of one batch cut into micro-batches, longest first: each micro-batch's size stays
    within ``budget`` — padded size (examples × its longest) or, with ``padded=False`` (padding-free
    packing), the sum of its lengths; an example longer than the budget alone forms its own
    micro-batch. Every index appears exactly once."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    groups: list[list[int]] = []
    for i in order:
        if groups:
            group = groups[-1]
            # sorted: the first is the longest
            size = (
                (len(group) + 1) * lengths[group[0]]
                if padded
                else sum(lengths[j] for j in group) + lengths[i]
            )
            if size <= budget:
                group.append(i)
                continue
        groups.append([i])
    return groups


class TokenBudgetCollator:
    """Wraps the trainer's collator: a batch of rows becomes ``{"num_examples", "micro_batches"}``,
    each micro-batch collated (padded) by the wrapped collator on its own."""

    def __init__(
        self, collate: Callable[[list[dict[str, Any]]], dict[str, Any]], budget: int, padded: bool = True
    ):
        self.collate, self.budget, self.padded = collate, budget, padded
        self.oversized = 0  # examples longer than the budget (trained alone)
        self.micro_batches = 0
        self.largest = 0  # the largest micro-batch seen (padded or packed tokens)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        lengths = [len(row["input_ids"]) for row in rows]
        groups = pack_by_tokens(lengths, self.budget, self.padded)
        self.oversized += sum(1 for g in groups if len(g) == 1 and lengths[g[0]] > self.budget)
        self.micro_batches += len(groups)
        for g in groups:
            size = len(g) * lengths[g[0]] if self.padded else sum(lengths[i] for i in g)
            self.largest = max(self.largest, size)
        return {
            # first key: what the trainer's find_batch_size reads (evaluation weights batches by it)
            "num_examples": torch.zeros(len(rows), dtype=torch.int8),
            "micro_batches": [self.collate([rows[i] for i in group]) for group in groups],
        }


# --------------------------------------------------------------------------- memory
@dataclass(frozen=True)
class ModelShape:
    """What activation memory depends on (from a transformers config)."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    vocab: int
    parameters: int

    @classmethod
    def of(cls, config: Any, parameters: int) -> ModelShape:
        hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0))
        return cls(
            layers=int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 1)),
            hidden=hidden,
            intermediate=int(getattr(config, "intermediate_size", 0) or 4 * hidden),
            heads=int(getattr(config, "num_attention_heads", 0) or 1),
            vocab=int(getattr(config, "vocab_size", 0)),
            parameters=parameters,
        )


def activation_bytes(
    shape: ModelShape, tokens: int, longest: int, checkpointed: int = 0, rows: int = 1, half: bool = False
) -> int:
    """Estimated bytes of activations kept for the backward pass of one micro-batch of ``tokens``
    padded tokens (``rows`` examples, the longest ``longest`` tokens), with ``checkpointed`` of the
    model's layers under gradient checkpointing.

    Per token and layer, LoRA training keeps the inputs of every projection, norm and dropout:
    about 30 hidden-sized and 8 intermediate-sized fp32 vectors. Attention is a fused kernel
    (linear in tokens), but a padded batch's mask costs about one byte per head and key. A
    checkpointed layer keeps about 16 hidden-sized vectors per token, and one layer at a time is
    recomputed in full. Calibrated on SmolLM2-135M on CPU (peak RSS 2.8 / 4.6 / 8.0 GB for one
    example of 512 / 1,024 / 2,048 tokens: 3.4 MB per token; 3.7 GB for 2,048 tokens with every
    layer checkpointed; BENCHMARKS.md). Under bf16/fp16 autocast (``half``) part of them are
    16-bit: about 0.77 of that (6.6 GB for 2,100 tokens on an AVX512-BF16 CPU).
    """
    per_token_layer = 4 * (30 * shape.hidden + 8 * shape.intermediate)
    if rows > 1:
        per_token_layer += shape.heads * longest
    checkpointed = max(0, min(checkpointed, shape.layers))
    per_token = (shape.layers - checkpointed) * per_token_layer + checkpointed * 4 * shape.hidden * 16
    if checkpointed:
        per_token += per_token_layer  # the layer being recomputed
    return int(tokens * per_token * (0.77 if half else 1.0))


def fixed_bytes(shape: ModelShape) -> int:
    """Weights (fp32), the LoRA optimizer's state and the framework's own footprint (the 1.1 GB
    measured before the first batch of SmolLM2-135M, of which 0.54 GB are weights)."""
    return int(shape.parameters * 4) + int(0.55 * GIB)


def free_memory_bytes() -> int:
    """Memory free for this run: the GPU's free memory with CUDA, else the system's available memory
    (``MemAvailable``; the cgroup limit when that is lower)."""
    import torch

    if torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info()
        return int(free)
    available = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit_file, encoding="utf-8") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit():
            available = min(available, int(text))
    return int(available)


@dataclass(frozen=True)
class MemoryPlan:
    """The chosen micro-batch plan and why (saved in ``training_summary.json``)."""

    max_tokens_per_batch: int | None  # None: padded batches of per_device_train_batch_size
    checkpointed_layers: int  # layers under gradient checkpointing for the largest micro-batch
    layers: int
    estimated_peak_gib: float
    free_gib: float
    reason: str
    usable_bytes: int = 0  # what a micro-batch may use; each one checkpoints just enough layers
    shape: dict[str, int] | None = None
    half: bool = False
    every_layer: bool = False  # the user asked for gradient checkpointing: every layer, always

    def layers_for(self, tokens: int, longest: int) -> int:
        """Layers to checkpoint for one micro-batch of ``tokens`` padded tokens (its longest row
        ``longest``): just enough to stay within the plan's memory."""
        if self.every_layer or self.shape is None or not self.checkpointed_layers:
            return self.checkpointed_layers
        n = layers_to_checkpoint(ModelShape(**self.shape), tokens, longest, self.usable_bytes, self.half)
        return self.checkpointed_layers if n is None else min(n, self.layers)

    @property
    def gradient_checkpointing(self) -> bool:
        return self.checkpointed_layers > 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gradient_checkpointing": self.gradient_checkpointing}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryPlan:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def _peak(shape: ModelShape, tokens: int, longest: int, checkpointed: int, half: bool = False) -> int:
    rows = max(1, tokens // max(longest, 1))
    return fixed_bytes(shape) + activation_bytes(shape, tokens, longest, checkpointed, rows, half)


def layers_to_checkpoint(
    shape: ModelShape, tokens: int, longest: int, usable: int, half: bool = False
) -> int | None:
    """The fewest layers to checkpoint so that a micro-batch of ``tokens`` fits in ``usable``
    bytes (each checkpointed layer costs one more forward pass of itself); None when even every
    layer checkpointed does not fit."""
    for n in range(shape.layers + 1):
        if _peak(shape, tokens, longest, n, half) <= usable:
            return n
    return None


def plan_memory(
    shape: ModelShape,
    *,
    max_length: int,
    longest_example: int,
    batch_size: int,
    requested_budget: int | None,
    checkpointing: bool,
    free_bytes: int,
    on_gpu: bool,
    half: bool = False,
) -> MemoryPlan:
    """Pick the token budget and how many layers to checkpoint.

    ``requested_budget``: None = automatic (the largest micro-batch up to a cap that fits without
    checkpointing, else the longest example with just enough layers checkpointed), 0 = off
    (padded batches of ``batch_size``), N = N tokens. ``checkpointing`` = the user asked for it
    (every layer); ``half``: bf16/fp16 autocast. Raises ``ValueError`` with a one-line reason when
    not even one example fits.
    """
    import functools

    peak_of = functools.partial(_peak, half=half)
    fit_layers = functools.partial(layers_to_checkpoint, half=half)
    usable = int(free_bytes * USABLE_SHARE)
    hard = int(free_bytes * HARD_SHARE)
    longest = max(1, min(longest_example, max_length))
    free_gib = round(free_bytes / GIB, 1)
    target = f"{usable / GIB:.1f} GiB ({USABLE_SHARE:.0%} of {free_gib} GiB free)"

    def plan(tokens: int, budget: int | None, why: str) -> MemoryPlan:
        rows_longest = min(tokens, longest)
        if checkpointing:
            n: int | None = shape.layers
        else:
            n = fit_layers(shape, tokens, rows_longest, usable)
            if n is None and fit_layers(shape, tokens, rows_longest, hard) is not None:
                n = shape.layers
                why += f"; every layer checkpointed and more than {target}: close other programs"
        if n is None:
            n = shape.layers
            why += f"; more than {HARD_SHARE:.0%} of the free memory even with every layer checkpointed"
        elif n and not checkpointing and "every layer" not in why:
            why += (
                f"; gradient checkpointing switched on for up to {n} of {shape.layers} layers "
                f"(per micro-batch, just enough to stay within {target})"
            )
        peak = peak_of(shape, tokens, rows_longest, n)
        return MemoryPlan(
            budget,
            n,
            shape.layers,
            round(peak / GIB, 2),
            free_gib,
            why,
            usable,
            asdict(shape),
            half,
            checkpointing,
        )

    if fit_layers(shape, longest, longest, hard) is None:
        need = peak_of(shape, longest, longest, shape.layers) / GIB
        raise ValueError(
            f"one example of {longest} tokens needs about {need:.1f} GiB even with gradient checkpointing "
            f"and {free_gib} GiB are free: lower --max-length, or free memory"
        )
    if requested_budget == 0:  # off: padded batches of batch_size × longest
        tokens = batch_size * longest
        if fit_layers(shape, tokens, longest, hard) is None:
            need = peak_of(shape, tokens, longest, shape.layers) / GIB
            raise ValueError(
                f"a padded batch of {batch_size} × {longest} tokens needs about {need:.1f} GiB even with "
                f"gradient checkpointing and {free_gib} GiB are free: set --max-tokens-per-batch "
                "(or lower --per-device-train-batch-size)"
            )
        return plan(tokens, None, "padded batches (--max-tokens-per-batch 0)")
    if requested_budget is not None:
        return plan(max(requested_budget, 1), requested_budget, f"--max-tokens-per-batch {requested_budget}")
    cap = GPU_BUDGET_CAP if on_gpu else CPU_BUDGET_CAP
    budget = max(longest, min(cap, batch_size * longest))
    while budget > longest and peak_of(shape, budget, min(budget, longest), 0) > usable:
        budget = max(longest, budget * 3 // 4)
    return plan(budget, budget, f"automatic, at most {cap} tokens")


def measured_peak_gib() -> float:
    """The process's peak memory so far: the GPU's peak allocation with CUDA, else peak RSS."""
    import resource

    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / GIB, 2)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 2)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs a subprocess); None without it."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Hand the memory the C allocator keeps after tensors are freed back to the system
    (glibc's ``malloc_trim``). Training on a CPU frees gigabytes of activations per update in
    pieces of many sizes; without this the freed pieces stay in the process, fragmented, and its
    resident memory grows update after update past the planned peak. False where there is no
    glibc (macOS, musl, Windows): nothing done."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def memory_release_callback() -> Any:
    """A ``TrainerCallback`` that calls :func:`release_freed_memory` after every update and every
    validation pass (CPU training; on CUDA the activations live on the GPU and nothing is done)."""
    import torch
    from transformers import TrainerCallback

    class ReleaseFreedMemory(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not torch.cuda.is_available():
                release_freed_memory()

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.on_step_end(args, state, control)

    return ReleaseFreedMemory()
