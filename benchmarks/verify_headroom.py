"""How much can re-ranking the table's drafts win, and does the adapter know which draft is right?

    make demo                                                       # trains runs/demo/adapter
    .venv/bin/python benchmarks/verify_headroom.py                   # the demo run
    .venv/bin/python benchmarks/verify_headroom.py --run runs/real --set tau-retail --set tau-airline

``verify`` can only put first a right call that is among its drafts, and its model is used only
when, on the validation steps, it puts the actor's call first significantly more often than the
table's own ranking (exact McNemar, ``MODEL_GATE_P``). This script scores every draft of every
validation and test step with the adapter (one pass per step over the cached prefix, as ``verify``
does) and prints, per split:

* ``among drafts`` — steps whose actor call is among the drafts (the ceiling of any ranking);
* ``table first`` / ``model first`` — steps where the table's probability / the adapter's
  log-likelihood alone puts it first;
* ``headroom`` — steps where a right draft exists but the table does not put it first: what a
  perfect re-ranker could win over the table, and ``model first there``, how many of those the
  adapter's own ranking gets;
* ``AUC table / model`` — whether the table's top draft is right, predicted by the table's
  probability of it vs by the adapter's share of the softmax over the drafts (0.5: no information):
  what a confidence signal for the launch policy would have to beat.

The line below the table says how many wins (with no losses) the gate needs on a split: a split
whose headroom is smaller cannot let the model in, however good it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from specdecode.demo import inference_dtype
from specdecode.evaluate.metrics import mcnemar_exact
from specdecode.jsonl import read_records
from specdecode.models import adapter_form
from specdecode.records import TraceRecord
from specdecode.registry import load_registry
from specdecode.speculate.calibration import MODEL_GATE_P, Calibration
from specdecode.speculate.match import make_matcher
from specdecode.speculate.predictors import DraftScorer, VerifyPredictor, contexts_of
from specdecode.speculate.predictors.table import PatternPredictor


def auc(scores: list[float], labels: list[bool]) -> float | None:
    """Probability that a right case scores above a wrong one (ties half); None without both."""
    right = [s for s, y in zip(scores, labels) if y]
    wrong = [s for s, y in zip(scores, labels) if not y]
    if not right or not wrong:
        return None
    return sum((r > w) + 0.5 * (r == w) for r in right for w in wrong) / (len(right) * len(wrong))


def wins_needed(gate: float = MODEL_GATE_P) -> int:
    """The fewest wins, with no losses, whose exact McNemar p is below ``gate``."""
    n = 1
    while mcnemar_exact(n, 0) >= gate:
        n += 1
    return n


def step_row(verify: VerifyPredictor, context: Any, gold: Any, matcher: Any) -> dict[str, Any]:
    """One step's drafts: which are right, the table's probabilities, the adapter's scores."""
    calls, priors = verify.valid_drafts(context)
    scores = verify.scorer.score(context, calls)  # (sum of log-probabilities, tokens) per draft
    return {"labels": [bool(matcher(c, gold)) for c in calls], "priors": priors, "scores": scores}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {"steps": len(rows), "among": 0, "table": 0, "model": 0, "headroom": 0, "model_there": 0}
    top_right, table_conf, model_conf = [], [], []
    for r in rows:
        labels, priors, scores = r["labels"], r["priors"], [s for s, _ in r["scores"]]
        if not labels:
            continue
        t = max(range(len(priors)), key=priors.__getitem__)
        m = max(range(len(scores)), key=scores.__getitem__)
        out["among"] += any(labels)
        out["table"] += labels[t]
        out["model"] += labels[m]
        if any(labels) and not labels[t]:
            out["headroom"] += 1
            out["model_there"] += labels[m]
        top_right.append(labels[t])
        table_conf.append(priors[t])
        model_conf.append(Calibration().shares(r["scores"])[t])  # summed, as verify scores them
    out["auc_table"], out["auc_model"] = auc(table_conf, top_right), auc(model_conf, top_right)
    return out


def _auc(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo"), help="a demo or real-data run folder")
    parser.add_argument("--set", action="append", default=[], help="real-data run: tau-retail, tau-airline")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default=None, help="default: bf16 on AMX/AVX512-BF16 CPUs (as the demo)")
    parser.add_argument("--out", type=Path, default=None, help="also write the per-step rows here (JSON)")
    args = parser.parse_args(argv)
    from specdecode.evaluate.backends.hf import HFBackend

    if args.set:  # benchmarks/real_data.py layout
        adapter = Path(json.loads((args.run / "stages" / "train.json").read_text())["result"]["adapter"])
        folders = {s: args.run / "data" / s for s in args.set}
        sets = {s: (f, load_registry(f / "tools.yaml")) for s, f in folders.items()}
    else:  # make demo layout
        adapter, sets = args.run / "adapter", {"demo": (args.run / "traces", load_registry("tools4"))}
    backend = HFBackend(args.model, str(adapter), dtype=args.dtype or inference_dtype())
    matcher = make_matcher("normalised", 0.8)
    table_rows, dumped = [], {}
    for name, (folder, registry) in sets.items():
        table = PatternPredictor.fit(read_records(folder / "train.jsonl", TraceRecord))
        verify = VerifyPredictor(table, DraftScorer(backend, adapter=True, form=adapter_form(adapter)))
        for split in ("val", "test"):
            rows = []
            with verify.scorer.merged():
                for trace in read_records(folder / f"{split}.jsonl", TraceRecord):
                    for context in contexts_of(trace, registry):
                        rows.append(step_row(verify, context, trace.trace[context.step].action, matcher))
            verify.scorer.reset()
            dumped[f"{name}/{split}"] = rows
            table_rows.append((name, split, summarise(rows)))
            print(f"{name} {split}: {len(rows)} steps scored", file=sys.stderr, flush=True)
    print(f"{args.run}, {args.model} + adapter, dtype {backend.dtype}")
    print(
        "| set | split | steps | among drafts | table first | model first | headroom | model first there "
        "| AUC table | AUC model |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, split, s in table_rows:
        print(
            f"| {name} | {split} | {s['steps']} | {s['among']} | {s['table']} | {s['model']} "
            f"| {s['headroom']} | {s['model_there']} | {_auc(s['auc_table'])} | {_auc(s['auc_model'])} |"
        )
    print(f"the gate (McNemar p < {MODEL_GATE_P}) needs at least {wins_needed()} wins with no losses")
    if args.out:
        args.out.write_text(json.dumps({"summary": table_rows, "steps": dumped}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
