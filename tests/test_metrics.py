"""Metrics against hand-computed values, McNemar and bootstrap on small known cases."""

from __future__ import annotations

import math

import pytest

from specdecode.evaluate.metrics import (
    args_match,
    bootstrap_ci,
    confusion,
    example_metrics,
    has_loop,
    mcnemar_exact,
    name_f1,
    normalise,
    paired,
    rate,
)
from specdecode.records import ToolCall


def c(name: str, **args) -> ToolCall:
    return ToolCall(tool_name=name, arguments=args)


def test_normalisation() -> None:
    assert normalise({"b": 1, "a": "  Hello   World "}) == normalise({"a": "hello world", "b": 1.0})
    assert normalise({"n": 2}) == normalise({"n": 2.0})
    assert normalise({"n": "2"}) != normalise({"n": 2})
    assert normalise({"x": [1, "A"]}) == normalise({"x": [1.0, "a"]})


def test_example_metrics_hand_computed() -> None:
    gold = [
        c("search", query="Varnholm population"),
        c("search", query="area"),
        c("calculator", expression="1/2"),
        c("final_answer", answer="3"),
    ]
    pred = [
        c("search", query="varnholm  POPULATION"),
        c("wikipedia", title="Varnholm"),
        c("calculator", expression="2/1"),
    ]
    m = example_metrics(gold, pred, parse_ok=True)
    assert m["first_call_name"] and m["first_call_exact"]
    assert not m["seq_exact"]
    # multisets: gold {search:2, calculator:1, final_answer:1}, pred {search:1, wikipedia:1, calculator:1}
    # overlap 2 → precision 2/3, recall 2/4 → F1 = 2·(2/3·1/2)/(2/3+1/2) = 4/7
    assert m["name_f1"] == pytest.approx(4 / 7)
    # names line up at positions 0 and 2; arguments match at 0 only
    assert m["args_match"] == pytest.approx(0.5)
    assert not m["loop"] and not m["over_action"]


def test_edge_cases() -> None:
    assert name_f1([], []) == 1.0 and name_f1([c("a")], []) == 0.0
    assert args_match([c("a")], [c("b")]) is None
    m = example_metrics([c("a")], [], parse_ok=False)
    assert not m["first_call_name"] and not m["seq_exact"] and m["name_f1"] == 0.0
    loop = [c("search", query="x")] * 3
    assert has_loop(loop) and not has_loop(loop[:2]) and not has_loop([c("s", q=1), c("s", q=2), c("s", q=1)])
    assert example_metrics([c("a")], [c("a")] * 4, True)["over_action"]
    assert not example_metrics([c("a")], [c("a")] * 3, True)["over_action"]


def test_mcnemar_exact_known_values() -> None:
    # b=0, c=5: p = 2 · 0.5^5 = 0.0625; b=1, c=9: 2·(1+10)/1024 = 0.021484375
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625)
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0
    # scipy's exact binomial test agrees
    from scipy.stats import binomtest

    assert mcnemar_exact(2, 12) == pytest.approx(binomtest(2, 14, 0.5).pvalue)


def test_paired_counts() -> None:
    base = [True, False, False, True, False]
    lora = [True, True, True, False, False]
    assert paired(base, lora) == {"wins": 2, "ties": 2, "losses": 1, "mcnemar_p": pytest.approx(1.0)}


def test_bootstrap_known_cases() -> None:
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    lo, hi = bootstrap_ci([0.0] * 50 + [1.0] * 50, n_resamples=2000, seed=1)
    # normal approximation: 0.5 ± 1.96·sqrt(0.25/100) = [0.402, 0.598]
    assert lo == pytest.approx(0.402, abs=0.03) and hi == pytest.approx(0.598, abs=0.03)
    assert bootstrap_ci([0.0, 1.0], seed=3) == bootstrap_ci([0.0, 1.0], seed=3)
    assert math.isnan(bootstrap_ci([])[0])
    r = rate([True, None, False, True])
    assert r["n"] == 3 and r["mean"] == pytest.approx(2 / 3)


def test_confusion_table() -> None:
    rows = [
        {"gold_calls": [{"tool_name": "search"}], "pred_calls": [{"tool_name": "search"}]},
        {"gold_calls": [{"tool_name": "search"}], "pred_calls": []},
        {"gold_calls": [{"tool_name": "wikipedia"}], "pred_calls": [{"tool_name": "search"}]},
    ]
    assert confusion(rows) == {"search": {"<none>": 1, "search": 1}, "wikipedia": {"search": 1}}
