"""Schema-true arguments and their sources: casts never break a type or an enum, fields of
structured observations are copied exactly, sources are chosen on folds of the training traces
only, and no invalid call is scored as valid or launched."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli
from specdecode.records import ToolCall, ToolSpec, TraceRecord, TraceStep
from specdecode.registry import Registry
from specdecode.speculate.arguments import Views, fit_argument_table
from specdecode.speculate.predictors import PatternPredictor, Predictor, contexts_of
from specdecode.speculate.replay import ReplaySettings, replay
from specdecode.speculate.schema import INVALID, CallGuard, cast_value

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(JSONISH, st.sampled_from(["integer", "number"]))
def test_a_number_field_never_receives_a_non_number(value, kind) -> None:
    cast = cast_value(value, {"type": kind})
    if cast is not INVALID:
        assert isinstance(cast, (int, float)) and not isinstance(cast, bool) and math.isfinite(cast)
        assert kind == "number" or isinstance(cast, int)


@settings(max_examples=300, deadline=None)
@given(JSONISH)
def test_an_enum_never_receives_a_value_outside_it(value) -> None:
    enum = ["economy", "business", "basic_economy", 3]
    cast = cast_value(value, {"type": ["string", "integer"], "enum": enum})
    assert cast is INVALID or cast in enum
    # a case-only difference is the enum's own spelling; a number written as text is the number
    assert cast_value(" Business ", {"enum": enum}) == "business"
    assert cast_value("3", {"enum": enum}) == 3


def test_casts_are_exact_and_strings_keep_their_text() -> None:
    assert cast_value(19122, {"type": "string"}) == "19122"
    assert cast_value("42", {"type": "integer"}) == 42
    assert cast_value("42 apples", {"type": "integer"}) is INVALID  # a number followed by words
    assert cast_value("Paris  FRANCE", {"type": "string"}) == "Paris  FRANCE"
    assert cast_value("7", {"type": "array", "items": {"type": "integer"}}) == [7]
    guard = CallGuard(
        [
            ToolSpec(
                name="book",
                description="Book.",
                parameters={
                    "type": "object",
                    "properties": {"n": {"type": "integer"}, "cabin": {"enum": ["economy", "business"]}},
                    "required": ["n", "cabin"],
                },
            )
        ]
    )
    assert guard.check(
        ToolCall(tool_name="book", arguments={"n": "2", "cabin": "Economy", "x": 1})
    ) == ToolCall(
        tool_name="book", arguments={"n": 2, "cabin": "economy"}
    )  # cast, enum spelling, unknown key dropped
    assert guard.check(ToolCall(tool_name="book", arguments={"n": "two", "cabin": "economy"})) is None
    assert guard.check(ToolCall(tool_name="book", arguments={"n": 2})) is None  # a required argument missing
    assert guard.check(ToolCall(tool_name="fly", arguments={})) is None  # not a tool here


ORDER_TOOLS = Registry(
    "orders",
    (
        ToolSpec(
            name="get_user",
            description="A user's orders.",
            parameters={
                "type": "object",
                "properties": {"user_id": {"type": "string"}},
                "required": ["user_id"],
            },
            read_only=True,
        ),
        ToolSpec(
            name="get_order",
            description="An order.",
            parameters={
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
            read_only=True,
        ),
        ToolSpec(
            name="return_items",
            description="Return items.",
            parameters={
                "type": "object",
                "properties": {
                    "order_id": {"type": "string"},
                    "item_ids": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["order_id", "item_ids"],
            },
        ),
    ),
)


def _order_trace(i: int) -> TraceRecord:
    """A user looks up their orders and returns every item of the first: ids in mixed case, found
    only in structured (JSON) observations."""
    user = f"User_{i:03d}"
    orders = [f"#Wa{i:04d}X", f"#Wb{i:04d}Y"]
    items = [f"It{i:03d}a", f"It{i:03d}b"][: 1 + i % 2]
    return TraceRecord(
        id=f"t{i}",
        question=f"I am {user} and want to return what I bought.",
        trace=[
            TraceStep(
                action=ToolCall(tool_name="get_user", arguments={"user_id": user}),
                observation=json.dumps({"name": user, "orders": orders}),
            ),
            TraceStep(
                action=ToolCall(tool_name="get_order", arguments={"order_id": orders[0]}),
                observation=json.dumps(
                    {"order_id": orders[0], "items": [{"item_id": x, "price": 3} for x in items]}
                ),
            ),
            TraceStep(
                action=ToolCall(
                    tool_name="return_items", arguments={"order_id": orders[0], "item_ids": items}
                )
            ),
        ],
    )


def test_a_structured_observations_field_is_copied_exactly() -> None:
    pattern = PatternPredictor.fit([_order_trace(i) for i in range(20)])
    test = _order_trace(99)
    contexts = contexts_of(test, ORDER_TOOLS)
    for context, step in zip(contexts, test.trace):
        assert pattern.predict(context, 1)[0] == step.action  # exact: same case, same list
    plan = pattern.explain()
    assert plan["get_order"]["*"]["arguments"]["order_id"][0].startswith("field")
    assert plan["return_items"]["*"]["arguments"]["item_ids"][0].startswith("field")


def test_folds_cover_the_training_traces_only(tmp_path: Path) -> None:
    train = [_order_trace(i) for i in range(15)]
    table = fit_argument_table(train)
    # every held-out tally counts training calls of that tool, each exactly once
    for tool, plan in table.plans.items():
        calls = sum(1 for t in train for s in t.trace if s.action.tool_name == tool)
        assert {h.total for per in plan.held["*"].values() for h in per.values()} == {calls}
    # `speculate fit` reads its training file only: a broken test split beside it changes nothing
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(t.model_dump_json() + "\n" for t in train))
    (folder / "test.jsonl").write_text(
        "".join(_order_trace(i).model_dump_json() + "\n" for i in range(50, 60))
    )
    run_cli(
        "speculate", "fit", folder / "train.jsonl", "--out", tmp_path / "a", "--table", "pattern", check=True
    )
    (folder / "test.jsonl").write_text("{ not json\n")
    proc = run_cli("speculate", "fit", folder / "train.jsonl", "--out", tmp_path / "b", "--table", "pattern")
    assert proc.returncode == 0, proc.stderr
    assert "get_order after" in proc.stdout  # the plan is printed
    assert (tmp_path / "a" / "pattern.json").read_bytes() == (tmp_path / "b" / "pattern.json").read_bytes()
    # the same traces in another order give the same folds' result only through the seed: refit is stable
    assert json.dumps(PatternPredictor.fit(train).to_json(), sort_keys=True) == json.dumps(
        PatternPredictor.fit(train).to_json(), sort_keys=True
    )


class Breaker(Predictor):
    """Proposes a call that breaks its schema, then a valid one."""

    name = "breaker"

    def predict(self, context, k=1):
        return [
            ToolCall(tool_name="get_order", arguments={"order_id": ["not", "a", "string"]}),
            ToolCall(tool_name="get_order", arguments={"order_id": "#Wa0001X"}),
        ][:k]


def test_invalid_predictions_are_counted_never_scored_or_launched(tmp_path: Path) -> None:
    from specdecode.speculate.executor import SpeculativeExecutor

    test = [_order_trace(1)]
    summary = replay(
        test, ORDER_TOOLS, {"breaker": Breaker()}, tmp_path, ReplaySettings(k=2, latency_samples=0)
    )
    assert summary["breaker"]["invalid_predictions"] == 3 and summary["breaker"]["steps_with_invalid"] == 3
    rows = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert all(r["invalid"] == 1 and len(r["pred_calls"]) == 1 for r in rows)
    assert rows[1]["hit_at_1"]  # the valid second guess moved up
    called = []
    executor = SpeculativeExecutor(
        Breaker(), ORDER_TOOLS, {"get_order": lambda order_id: called.append(order_id) or "{}"}, k=2
    )
    with executor:
        executor.start("q").result(timeout=10)
        executor.call("get_order", {"order_id": "#Wa0001X"})
    assert executor.stats.invalid == 1 and executor.stats.hits == 1
    assert called == ["#Wa0001X"]  # only the valid call ever ran


def test_views_see_values_already_used() -> None:
    trace = _order_trace(3)
    view = Views().of(trace.question, trace.trace[:2])
    assert view.prev == "get_order" and json.dumps("#Wa0003X".casefold()) in view.used
    with pytest.raises(AssertionError):
        assert json.dumps("#Wb0003Y".casefold()) in view.used
