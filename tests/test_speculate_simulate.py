"""The latency model against timelines computed by hand."""

from __future__ import annotations

import math
import random

import pytest

from specdecode.speculate.simulate import (
    Distribution,
    LatencyModel,
    Step,
    bound,
    simulate,
    simulate_step,
    sweep,
)


def test_all_hits_hide_tool_time_up_to_the_bound():
    # actor 2 s, tool 1 s, speculator 0.5 s: the result is ready at 1.5 s < 2 s, the step takes 2 s.
    totals = simulate([Step(2.0, 1.0, 0.5, hit=True, launched=1)] * 2)
    assert totals.baseline == 6.0
    assert totals.speculative == 4.0
    assert totals.saved == 2.0
    assert totals.speedup == 1.5
    assert totals.bound == pytest.approx(1.5)  # h = 1, f = 1/3
    assert totals.wasted_calls == 0


def test_hit_that_outlasts_the_thinking_hides_only_the_overlap():
    # actor 1 s, tool 2 s, speculator 0.5 s: result at 2.5 s instead of 3 s, saves 0.5 s.
    out = simulate_step(Step(1.0, 2.0, 0.5, hit=True, launched=1))
    assert (out.baseline, out.speculative, out.saved) == (3.0, 2.5, 0.5)


def test_all_misses_waste_every_call_and_save_nothing():
    totals = simulate([Step(2.0, 1.0, 0.1, hit=False, launched=1)] * 3)
    assert totals.speculative == totals.baseline == 9.0
    assert totals.speedup == 1.0
    assert totals.wasted_calls == 3
    assert totals.wasted_tool_seconds == 3.0
    assert totals.bound == 1.0


def test_mixed_timeline():
    steps = [
        Step(2.0, 1.0, 0.5, hit=True, launched=1),  # 3 → 2
        Step(1.0, 3.0, 0.2, hit=False, launched=1),  # 4 → 4, 1 wasted (3 s of tool time)
        Step(0.5, 1.0, 0.1, hit=True, launched=1),  # 1.5 → max(0.5, 1.1) = 1.1
        Step(1.0, 0.0, 0.0, hit=False, launched=0),  # not speculated (side effects): 1 → 1
    ]
    totals = simulate(steps)
    assert totals.baseline == pytest.approx(9.5)
    assert totals.speculative == pytest.approx(8.1)
    assert totals.saved == pytest.approx(1.4)
    assert totals.wasted_calls == 1
    assert totals.wasted_tool_seconds == pytest.approx(3.0)
    assert totals.tool_fraction == pytest.approx(5.0 / 9.5)
    assert totals.weighted_hit_rate == pytest.approx(2.0 / 5.0)
    assert totals.bound == pytest.approx(1 / (1 - 2.0 / 9.5))
    assert totals.speedup <= totals.bound


def test_zero_tool_latency_saves_nothing():
    totals = simulate([Step(2.0, 0.0, 0.5, hit=True, launched=1)] * 2)
    assert totals.speedup == 1.0
    assert totals.bound == 1.0
    assert totals.wasted_calls == 0


def test_k_candidates_waste_the_others():
    hit = simulate_step(Step(2.0, 1.0, 0.5, hit=True, launched=3, wasted_tool_seconds=2.5))
    assert hit.speculative == 2.0 and hit.wasted_calls == 2
    # the given seconds are those of the calls that are not the hit (as replay passes them)
    assert hit.wasted_tool_seconds == 2.5
    miss = simulate_step(Step(2.0, 1.0, 0.5, hit=False, launched=3, wasted_tool_seconds=2.5))
    assert miss.speculative == 3.0 and miss.wasted_calls == 3 and miss.wasted_tool_seconds == 2.5
    totals = simulate([Step(2.0, 1.0, 0.5, hit=True, launched=3), Step(2.0, 1.0, 0.5, hit=False, launched=3)])
    assert totals.wasted_calls == 5 and totals.launched == 6
    assert totals.wasted_tool_seconds == 5.0  # not given: the step's tool time per wasted call
    free = simulate_step(Step(2.0, 1.0, 0.5, hit=False, launched=2, wasted_tool_seconds=0.0))
    assert free.wasted_calls == 2 and free.wasted_tool_seconds == 0.0  # instant tools waste no time
    assert totals.summary(cost_per_call=0.01)["wasted_cost"] == pytest.approx(0.05)


def test_late_prediction_launches_nothing():
    out = simulate_step(Step(1.0, 1.0, 1.5, hit=True, launched=1))
    assert (out.speculative, out.saved, out.wasted_calls, out.in_time) == (2.0, 0.0, 0, False)


def test_speedup_never_exceeds_the_bound_on_random_timelines():
    rng = random.Random(0)
    for _ in range(300):
        steps = [
            Step(
                rng.uniform(0, 3),
                rng.choice([0.0, rng.uniform(0, 4)]),
                rng.uniform(0, 2),
                hit=rng.random() < 0.5,
                launched=rng.randint(0, 3),
            )
            for _ in range(rng.randint(1, 8))
        ]
        totals = simulate(steps)
        assert totals.speedup <= totals.bound + 1e-12
        for row in sweep(steps):
            assert row["speedup"] <= row["bound"] + 1e-12


def test_sweep_reaches_the_requested_tool_fraction():
    steps = [Step(2.0, 1.0, 0.0, hit=True, launched=1)] * 4
    rows = sweep(steps, (0.25, 0.5))
    # all hits with tools shorter than the thinking: the speed-up is the bound 1 / (1 - f)
    assert [r["speedup"] for r in rows] == pytest.approx([1 / 0.75, 2.0])
    assert [r["bound"] for r in rows] == pytest.approx([1 / 0.75, 2.0])
    assert bound(1.0, 1.0) == math.inf


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("lognormal:0,-1", "SIGMA >= 0"),
        ("fixed:nan", "finite"),
        ("fixed:inf", "finite"),
        ("uniform:0,inf", "finite"),
        ("empirical:1,nan", "finite"),
        ("lognormal:nan,1", "finite"),
        ("lognormal:1000,1", "more than"),  # the mean e^1000.5 overflows a float
        ("lognormal:0,60", "more than"),
        ("fixed:1e300", "more than"),
        ("empirical:1,-2", "negative"),
        (float("nan"), "finite"),
        (-1.0, "negative"),
    ],
)
def test_the_distribution_parser_refuses_parameters_that_are_not_sane_seconds(text, why):
    with pytest.raises(ValueError, match=why):
        Distribution.parse(text)


def test_distributions_parse_and_draw_reproducibly():
    assert Distribution.parse("fixed:2.0").sample(random.Random(0)) == 2.0
    u = Distribution.parse("uniform:1,3")
    assert all(1 <= u.sample(random.Random(i)) <= 3 for i in range(20))
    assert Distribution.parse("lognormal:0,0.5").mean == pytest.approx(math.exp(0.125))
    for bad in ("fixed", "uniform:3,1", "gamma:1,2", "fixed:-1", "lognormal:1"):
        with pytest.raises(ValueError):
            Distribution.parse(bad)
    model = LatencyModel.from_specs("uniform:1,2", ["lognormal:0,0.6", "final_answer=fixed:0"], seed=3)
    assert Distribution.parse("lognormal:-1,0.5").mean == pytest.approx(math.exp(-0.875))  # MU may be < 0
    assert model.tool_time("t", 1, "final_answer") == 0.0
    assert model.tool_time("t", 1, "search") == model.tool_time("t", 1, "search")  # keyed, stable
    assert model.actor_time("t", 0, measured=7.5) == 7.5  # a trace's own time wins
    assert LatencyModel(prefer_measured=False).actor_time("t", 0, measured=7.5) == 2.0


def test_latency_settings_from_yaml_and_flags(tmp_path):
    from specdecode.errors import InputError
    from specdecode.speculate.run import latency_settings

    path = tmp_path / "latency.yaml"
    path.write_text(
        'actor: uniform:1,2\ntool: {"*": "fixed:0.5", search: "fixed:3"}\nspeculator: {lora: "fixed:0.2"}\n'
    )
    model, given = latency_settings(None, ["calculator=fixed:0.1"], None, path)
    assert str(model.actor) == "uniform:1,2" and str(model.tool) == "fixed:0.5"
    assert model.tool_time("t", 0, "search") == 3.0 and model.tool_time("t", 0, "calculator") == 0.1
    assert str(given["lora"]) == "fixed:0.2"
    model, given = latency_settings("fixed:9", None, ["fixed:0.3"], path)
    assert model.actor_time("t", 0) == 9.0 and str(given["*"]) == "fixed:0.3"
    with pytest.raises(InputError):
        latency_settings("gamma:1", None, None)
