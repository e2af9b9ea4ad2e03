"""A live agent loop with and without the SpeculativeExecutor, next to replay's prediction.

The actor is a trace replayer: for each recorded trace it thinks for the step's think time
(``actor_seconds`` of the trace step when present, else ``--actor-latency``), then makes the
recorded call. Tools are real Python functions that sleep for their latency (``tool_seconds``
or ``--tool-latency``) and return the recorded observation. The same traces run twice — tools
called directly, then through the executor with a fitted pattern predictor — and the measured
wall-clock saving is printed beside what ``replay``'s simulator predicts for the same traces,
latencies and predictor.

    python examples/speculative_agent.py                        # synthetic traces, ~10 s
    python examples/speculative_agent.py --test runs/demo/traces/test.jsonl \
        --train runs/demo/traces/train.jsonl --registry tools4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from specdecode.data.synth import synthesize
from specdecode.jsonl import read_records
from specdecode.records import TraceRecord
from specdecode.registry import load_registry
from specdecode.speculate.live import live_check
from specdecode.speculate.predictors import fit_tables
from specdecode.speculate.simulate import LatencyModel


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--train", type=Path, help="training traces for the pattern table (default: synthetic)"
    )
    parser.add_argument("--test", type=Path, help="traces the agent replays (default: synthetic)")
    parser.add_argument("--n", type=int, default=20, help="synthetic test traces (default 20)")
    parser.add_argument("--registry", default="tools4")
    parser.add_argument("--predictor", default="pattern", choices=["pattern", "frequency"])
    parser.add_argument("--actor-latency", default="fixed:0.06", help="actor think time per step")
    parser.add_argument(
        "--tool-latency",
        action="append",
        default=None,
        help="tool latency, DIST or NAME=DIST, repeatable "
        "(default uniform:0.01,0.05 and final_answer=fixed:0)",
    )
    parser.add_argument(
        "--speculator-latency",
        type=float,
        default=0.0,
        help="seconds each prediction takes (a stand-in for a model speculator; default 0: the table's own)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    registry = load_registry(args.registry)
    train = read_records(args.train, TraceRecord) if args.train else synthesize(120, 0, args.registry)
    test = read_records(args.test, TraceRecord) if args.test else synthesize(args.n, 1, args.registry)
    tool_specs = args.tool_latency or ["uniform:0.01,0.05", "final_answer=fixed:0"]
    latency = LatencyModel.from_specs(args.actor_latency, tool_specs, seed=args.seed)
    predictor = fit_tables(train)[args.predictor]
    r = live_check(
        test, registry, predictor, latency, args.predictor, speculator_seconds=args.speculator_latency
    )

    print(f"{r['traces']} traces, {r['steps']} steps, predictor {args.predictor}")
    print(f"  without executor  {r['wall_without_s']:7.3f} s   (simulated {r['predicted_baseline_s']:.3f} s)")
    print(f"  with executor     {r['wall_with_s']:7.3f} s   (simulated {r['predicted_speculative_s']:.3f} s)")
    print(
        f"  saving measured   {r['measured_saving_s']:7.3f} s   predicted {r['predicted_saving_s']:.3f} s   "
        f"({100 * r['relative_error']:.1f} % apart)"
    )
    print(
        f"  speed-up measured {r['measured_speedup']:.3f}x, predicted {r['predicted_speedup']:.3f}x "
        f"(bound {r['bound']:.3f}x); hits {r['hits']}, misses {r['misses']}, "
        f"wasted calls {r['wasted_calls']} (predicted {r['predicted_wasted_calls']})"
    )
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}))
    return r


if __name__ == "__main__":
    main()
