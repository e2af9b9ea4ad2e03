"""Where the demo's speculation stage spends its time: seconds per predictor and phase.

Runs the demo's speculation stage (``specdecode.speculate.demo_stage.speculation_stage``) on a
finished demo run's traces and adapter, in a scratch copy, timing every predictor's
``predict_many``, ``measure_latency`` and ``calibrate``:

    .venv/bin/python benchmarks/speculate_stage_time.py --run runs/demo [--out runs/speculate-time]
        [--dtype bfloat16]

The scratch folder is replayed afresh (``--out`` is emptied first); ``runs/demo`` is only read.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

PHASES = ("predict_many", "measure_latency", "calibrate")


def timed_build(seconds: dict[str, float]) -> Any:
    """``build_predictors`` whose predictors add their phases' wall time to ``seconds``."""
    import specdecode.speculate.run as run

    original = run.build_predictors

    def build(*args: Any, **kwargs: Any) -> Any:
        predictors = original(*args, **kwargs)
        for name, predictor in predictors.items():
            for phase in PHASES:
                method = getattr(predictor, phase, None)
                if method is None:
                    continue

                def wrapper(*a: Any, _method: Any = method, _key: str = f"{name} {phase}", **kw: Any) -> Any:
                    started = time.perf_counter()
                    try:
                        return _method(*a, **kw)
                    finally:
                        seconds[_key] += time.perf_counter() - started

                setattr(predictor, phase, wrapper)
        return predictors

    run.build_predictors = build
    return original


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=Path("runs/demo"), help="a finished demo run")
    parser.add_argument("--out", type=Path, default=Path("runs/speculate-time"), help="scratch folder")
    parser.add_argument("--dtype", default="auto", help="the model's weights (auto: fp32 on CPU)")
    opts = parser.parse_args()
    if not (opts.run / "adapter" / "adapter_model.safetensors").is_file():
        parser.error(f"{opts.run}: no adapter (run `make demo` first)")
    shutil.rmtree(opts.out, ignore_errors=True)
    shutil.copytree(opts.run / "traces", opts.out / "traces")

    from specdecode.speculate.demo_stage import speculation_stage

    seconds: dict[str, float] = defaultdict(float)
    timed_build(seconds)
    started = time.perf_counter()
    traces = opts.out / "traces"
    speculation_stage(
        opts.out,
        traces / "train.jsonl",
        traces / "test.jsonl",
        opts.run / "adapter",
        "tools4",
        val_traces=traces / "val.jsonl",
        dtype=opts.dtype,
    )
    total = time.perf_counter() - started
    print(f"speculation stage on {opts.run}: {total:.1f} s")
    print("| predictor and phase | seconds | share |")
    print("|---|---:|---:|")
    for key, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
        if value >= 0.05:
            print(f"| {key} | {value:.1f} | {value / total:.0%} |")
    rest = total - sum(seconds.values())
    print(f"| the rest (fit, model load, summary) | {rest:.1f} | {rest / total:.0%} |")


if __name__ == "__main__":
    main()
