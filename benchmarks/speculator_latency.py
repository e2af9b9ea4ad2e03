"""Speculator latency at batch 1 with the cached prefix: generating the next call vs scoring drafts.

    make demo                                               # trains runs/demo/adapter
    .venv/bin/python benchmarks/speculator_latency.py       # the demo adapter on its test split
    .venv/bin/python benchmarks/speculator_latency.py --run runs/real --set tau-retail   # real data

A live speculator sees one step at a time: the observation arrives, the prompt grows by the last
call and its result, and the speculator must answer before the actor does. Each row walks the test
traces step by step in order at batch 1:

* ``generate (lora, constrained)`` — the adapter writes the next call (the ``lora`` predictor), its KV
  cache kept from the previous step; the text the grammar forces is fed as a verified draft
  (the hf backend's default); ``token by token`` is the same answer with one forward pass per token;
* ``score (verify, drafts only)`` — the pattern table's drafts scored by the adapter in one tree-masked
  pass over the kept cache (the ``verify`` predictor without its generation fallback);
* ``verify (as replayed)`` — the same with the constrained generation it falls back to when no
  draft is likely enough.

"cached" keeps the KV cache from step to step, "uncached" starts every step from an empty cache.
On CUDA the same script measures the GPU (``--dtype auto`` = bf16 there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

from specdecode.jsonl import read_records
from specdecode.models import adapter_form
from specdecode.records import TraceRecord
from specdecode.registry import load_registry
from specdecode.speculate.predictors import DraftScorer, ModelPredictor, VerifyPredictor, contexts_of
from specdecode.speculate.predictors.table import PatternPredictor


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo"), help="a demo or real-data run folder")
    parser.add_argument("--set", default=None, help="real-data run: tau-retail or tau-airline")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=40, help="test steps timed (in trace order)")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args(argv)
    import torch

    from specdecode.evaluate.backends import hf as hf_backend
    from specdecode.evaluate.backends.hf import HFBackend

    if args.set:  # benchmarks/real_data.py layout
        data = args.run / "data" / args.set
        train, test, registry = data / "train.jsonl", data / "test.jsonl", load_registry(data / "tools.yaml")
    else:  # make demo layout
        train, test = args.run / "traces" / "train.jsonl", args.run / "traces" / "test.jsonl"
        registry = load_registry("tools4")
    adapter = args.run / "adapter"
    if args.set:  # real_data.py trains into adapters/KEY/ and names it in its train stage
        adapter = Path(json.loads((args.run / "stages" / "train.json").read_text())["result"]["adapter"])
    form = adapter_form(adapter)
    contexts = [c for t in read_records(test, TraceRecord) for c in contexts_of(t, registry)][: args.steps]
    table = PatternPredictor.fit(read_records(train, TraceRecord))
    backend = HFBackend(args.model, str(adapter), dtype=args.dtype)
    generator = ModelPredictor(
        backend, adapter=True, constrained=True, form=form, batch_size=1, max_new_tokens=96, samples=0
    )
    scorer = DraftScorer(backend, adapter=True, form=form)
    drafts_only = VerifyPredictor(table, scorer, None)
    verify = VerifyPredictor(table, DraftScorer(backend, adapter=True, form=form), generator)
    rows = {}
    drafting = hf_backend.MAX_DRAFT
    for name, predictor, draft in (
        ("generate (lora, constrained, token by token)", generator, 0),
        ("generate (lora, constrained)", generator, drafting),
        ("score (verify, drafts only)", drafts_only, drafting),
        ("verify (as replayed)", verify, drafting),
    ):
        hf_backend.MAX_DRAFT = draft  # 0: no grammar drafts, one forward pass per generated token
        predictor.measure_latency(contexts[:2], cached_prefix=True)  # warm-up (kernels, grammar)
        cached = predictor.measure_latency(contexts, cached_prefix=True)
        uncached = predictor.measure_latency(contexts, cached_prefix=False)
        rows[name] = {
            "p50_cached": percentile(cached, 0.5),
            "p95_cached": percentile(cached, 0.95),
            "p50_uncached": percentile(uncached, 0.5),
            "p95_uncached": percentile(uncached, 0.95),
            "mean_cached": statistics.fmean(cached),
        }
    drafts = [len(drafts_only.drafts(c)) for c in contexts]
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"{platform.machine()} CPU"
    print(
        f"{len(contexts)} test steps of {args.run}{' / ' + args.set if args.set else ''}; "
        f"{args.model} + adapter "
        f"({form} form), dtype {backend.dtype}; {device}, {os.cpu_count()} cores; "
        f"drafts per step: median {statistics.median(drafts):.0f}, max {max(drafts)}; "
        f"verify generated on {verify.generated} of {2 * len(contexts) + 2} timed steps"
    )
    print("| speculator | p50 cached (s) | p95 cached (s) | p50 uncached (s) | p95 uncached (s) |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['p50_cached']:.3f} | {r['p95_cached']:.3f} | "
            f"{r['p50_uncached']:.3f} | {r['p95_uncached']:.3f} |"
        )
    ratio = (
        rows["generate (lora, constrained)"]["p50_cached"] / rows["score (verify, drafts only)"]["p50_cached"]
    )
    drafted = (
        rows["generate (lora, constrained, token by token)"]["p50_cached"]
        / rows["generate (lora, constrained)"]["p50_cached"]
    )
    print(f"scoring p50 is {ratio:.1f}x faster than generation; grammar drafts speed it {drafted:.2f}x")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
