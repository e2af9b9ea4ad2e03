"""The launch policy: λ = 0 launches every read-only candidate, a huge λ none, and the executor
and the simulator launch the same calls for the same candidates and probabilities."""

from __future__ import annotations

import json
from pathlib import Path

from specdecode.records import ToolCall, ToolSpec, TraceRecord, TraceStep
from specdecode.registry import Registry
from specdecode.speculate.executor import SpeculativeExecutor
from specdecode.speculate.policy import LaunchPolicy
from specdecode.speculate.predictors import Prediction, Predictor
from specdecode.speculate.replay import ReplaySettings, expected_hidden, replay, simulation_steps
from specdecode.speculate.simulate import LatencyModel

REG = Registry(
    "policy",
    tuple(
        ToolSpec(
            name=name,
            description=name,
            parameters={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
            read_only=name != "write",
            cost=cost,
        )
        for name, cost in (("search", 1.0), ("fetch", 4.0), ("write", 1.0))
    ),
)
CANDIDATES = [
    (ToolCall(tool_name="write", arguments={"q": "w"}), 0.9),  # never launched: not read-only
    (ToolCall(tool_name="search", arguments={"q": "a"}), 0.6),
    (ToolCall(tool_name="fetch", arguments={"q": "b"}), 0.5),  # costlier when wasted
    (ToolCall(tool_name="search", arguments={"q": "c"}), 0.05),
]


class Fixed(Predictor):
    """The same candidates with the same probabilities at every step."""

    name = "fixed"

    def predict_many(self, contexts, k=1):
        return [
            Prediction([c for c, _ in CANDIDATES][:k], 0.0, probs=[p for _, p in CANDIDATES][:k])
            for _ in contexts
        ]


def _launched(policy: LaunchPolicy, hidden: dict[str, float]) -> list[ToolCall]:
    return policy.choose(CANDIDATES, hidden.__getitem__, lambda tool: REG.get(tool).read_only)


def test_lambda_zero_launches_every_read_only_candidate_and_a_huge_one_none() -> None:
    hidden = {"search": 1.0, "fetch": 1.0, "write": 1.0}
    everything = _launched(LaunchPolicy(0.0, 4), hidden)
    assert [c.arguments["q"] for c in everything] == ["a", "b", "c"]
    assert _launched(LaunchPolicy(1e9, 4), hidden) == []
    costs = {"fetch": 4.0}
    # λ = 0.5: search a (0.6 ≥ 0.5) yes; fetch (0.5 × 1 < 0.5 × 4) no; search c (0.05) no
    assert [c.arguments["q"] for c in _launched(LaunchPolicy(0.5, 4, costs), hidden)] == ["a"]
    assert len(_launched(LaunchPolicy(0.0, 1), hidden)) == 1  # at most max_launches
    # a candidate without a probability is launched at λ = 0 only
    assert LaunchPolicy(0.0).worth(None, 1.0, "x") and not LaunchPolicy(0.1).worth(None, 1.0, "x")


def test_executor_and_simulator_launch_the_same_calls(tmp_path: Path) -> None:
    trace = TraceRecord(
        id="t",
        question="q",
        trace=[TraceStep(action=ToolCall(tool_name="search", arguments={"q": "a"}), observation="o")],
    )
    settings = ReplaySettings(
        k=4, latency=LatencyModel.from_specs("fixed:3.0", ["fixed:1.0", "fetch=fixed:2.0"])
    )
    replay([trace], REG, {"fixed": Fixed()}, tmp_path, settings)
    rows = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    hidden = expected_hidden(settings, 0.0)
    for lam in (0.0, 0.3, 0.55, 1.5, 1e9):
        policy = LaunchPolicy(lam, 4, {"fetch": 4.0, "search": 1.0, "write": 1.0})
        [step] = simulation_steps(rows, {"t": trace}, REG, settings, None, policy=policy)
        executor = SpeculativeExecutor(
            Fixed(),
            REG,
            {name: (lambda q: q) for name in ("search", "fetch", "write")},
            k=4,
            policy=policy,
            expected_seconds={"search": hidden("search"), "fetch": hidden("fetch"), "write": hidden("write")},
        )
        with executor:
            launched = executor.start("q").result(timeout=10)
        assert step.launched == len(launched), lam
        expected = policy.choose(CANDIDATES, hidden, lambda t: REG.get(t).read_only)
        assert launched == expected, lam
        assert executor.stats.refused == 1  # the write tool
    assert summary_frontier(tmp_path)


def summary_frontier(folder: Path) -> bool:
    """Replay's λ sweep: launches fall as λ grows, from every read-only candidate to none."""
    summary = json.loads((folder / "summary.json").read_text())
    frontier = summary["fixed"]["frontier"]
    launched = [point["launched_per_step"] for point in frontier]
    return launched[0] == 3 and launched[-1] == 0 and launched == sorted(launched, reverse=True)
