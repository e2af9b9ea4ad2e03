"""Frequency and pattern tables fitted on synthetic traces; replay on them (no model)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from specdecode.data.synth import synthesize
from specdecode.evaluate.metrics import same_call
from specdecode.records import ToolCall, TraceRecord, TraceStep
from specdecode.registry import load_registry
from specdecode.speculate.match import jaccard, make_matcher
from specdecode.speculate.predictors import StepContext, contexts_of, fit_tables, load_table
from specdecode.speculate.replay import ReplaySettings, replay
from specdecode.speculate.simulate import LatencyModel

REG = load_registry("tools4")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("fitted")
    return fit_tables(synthesize(120, seed=0), out), out


def _hit_rate(predictor, traces, by_name: bool = False) -> float:
    hits = n = 0
    for record in traces:
        for context in contexts_of(record, REG):
            pred = predictor.predict(context, 1)
            gold = record.trace[context.step].action
            n += 1
            hits += bool(pred) and (
                pred[0].tool_name == gold.tool_name if by_name else same_call(pred[0], gold)
            )
    return hits / n


def test_pattern_beats_frequency_and_learns_arguments(fitted):
    tables, _ = fitted
    test = synthesize(40, seed=1)
    assert _hit_rate(tables["pattern"], test, by_name=True) > _hit_rate(
        tables["frequency"], test, by_name=True
    )
    assert _hit_rate(tables["pattern"], test) > 0.2  # copy rules write real arguments
    assert _hit_rate(tables["frequency"], test) < 0.05  # the most frequent arguments rarely recur


def test_copy_rule_takes_the_title_from_the_question(fitted):
    tables, _ = fitted
    record = TraceRecord(
        id="x",
        question="According to Wikipedia, in what year was the poet Zora Quillfeather born?",
        trace=[TraceStep(action=ToolCall(tool_name="wikipedia", arguments={"title": "Zora Quillfeather"}))],
    )
    pred = tables["pattern"].predict(contexts_of(record, REG)[0], 1)
    assert pred[0] == ToolCall(tool_name="wikipedia", arguments={"title": "Zora Quillfeather"})


def test_back_off_and_offered_tools(fitted):
    tables, _ = fitted
    pattern = tables["pattern"]
    unseen = tuple(
        TraceStep(action=ToolCall(tool_name=n, arguments={})) for n in ("calculator", "calculator")
    )
    context = StepContext(question="q", history=unseen, tools=tuple(REG.tools), step=2)
    ranked = pattern.ranked_tools(context)
    assert set(ranked) == set(REG.names)  # unseen trigram: bigram and unigram fill in
    only = StepContext(question="q", history=(), tools=(REG.get("calculator"),))
    calls = pattern.predict(only, 3)
    assert {c.tool_name for c in calls} == {"calculator"}  # offered tools only
    assert len({json.dumps(c.arguments, sort_keys=True) for c in calls}) == len(calls)  # differ in arguments


def test_tables_round_trip_through_json(fitted):
    tables, out = fitted
    for name in ("frequency", "pattern"):
        loaded = load_table(out / f"{name}.json")
        json.loads((out / f"{name}.json").read_text())
        for record in synthesize(10, seed=2):
            for context in contexts_of(record, REG):
                assert loaded.predict(context, 3) == tables[name].predict(context, 3)


def test_matchers():
    a = ToolCall(tool_name="search", arguments={"query": "Paris population 2020"})
    b = ToolCall(tool_name="search", arguments={"query": "paris  population 2020"})
    c = ToolCall(tool_name="search", arguments={"query": "Paris population"})
    assert not make_matcher("exact")(a, b) and make_matcher("normalised")(a, b)
    assert jaccard(a.arguments, c.arguments) == pytest.approx(3 / 4)  # {query, paris, population, 2020}
    assert make_matcher("jaccard", 0.7)(a, c) and not make_matcher("jaccard", 0.8)(a, c)


def test_replay_summary_resume_and_read_only(fitted, tmp_path):
    tables, _ = fitted
    test = synthesize(12, seed=3)
    settings = ReplaySettings(k=3, latency=LatencyModel.from_specs("fixed:2.0", ["lognormal:0,0.6"]))
    first = replay(test, REG, {n: tables[n] for n in ("frequency", "pattern")}, tmp_path, settings)
    for name in ("frequency", "pattern"):
        s = first[name]
        assert s["steps"] == sum(len(t.trace) for t in test)
        assert s["hit_at_1"] <= s["hit_at_k"] and s["speedup"] <= s["bound"] + 1e-12
        assert {"name_hit_at_1", "wasted_calls", "per_level", "per_tool", "per_step_index"} <= set(s)
    assert "pattern vs frequency" in first["paired"]
    rows = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * first["steps"]
    # final_answer is not read-only: never launched, never a hit in the simulation
    answers = [r for r in rows if r["gold_tool"] == "final_answer"]
    assert answers and first["pattern"]["simulation"]["hits_used"] <= first["pattern"]["steps"] - len(answers)
    # a torn line and a rerun: the rows are kept, the summary is the same
    with open(tmp_path / "steps.jsonl", "a") as fh:
        fh.write('{"predictor": "pattern", "id"')
    with open(tmp_path / "steps.jsonl", "ab") as fh:
        fh.write('{"predictor": "pattern", "id": "\u00e9'.encode()[:-1])  # cut inside a character
    again = replay(test, REG, {n: tables[n] for n in ("frequency", "pattern")}, tmp_path, settings)
    assert again["pattern"]["rates"] == first["pattern"]["rates"]
    assert len((tmp_path / "steps.jsonl").read_text().splitlines()) == len(rows)
    # a pattern table refitted on other traces is another predictor: its rows are replayed again
    refit = fit_tables(synthesize(30, seed=7))
    assert refit["pattern"].describe() != tables["pattern"].describe()
    third = replay(test, REG, {"pattern": refit["pattern"]}, tmp_path, settings)
    fresh = replay(test, REG, {"pattern": refit["pattern"]}, tmp_path / "fresh", settings)
    assert fresh["pattern"]["rates"] != first["pattern"]["rates"]  # (so stale rows would show)
    assert third["pattern"]["rates"] == fresh["pattern"]["rates"]


class FakeBackend:
    """Answers next-call prompts without a model: greedy names the first offered tool with the
    question as its argument; sampled answers cycle through three guesses."""

    name = "fake"
    has_adapter = True

    def __init__(self):
        self.calls = 0
        self.requests = []

    def generate(self, requests, config, adapter):
        from specdecode.evaluate.backends import Generation

        out = []
        for request in requests:
            self.requests.append(request)
            self.calls += 1
            system = request.messages[0]["content"]
            first_tool = system.split("Available tools:\n- ")[1].split("(")[0]
            if config.temperature > 0:
                guess = ["a", "b", "a"][self.calls % 3]
                text = json.dumps({"tool_name": "search", "arguments": {"query": guess}})
            else:
                text = json.dumps({"tool_name": first_tool, "arguments": {"title": "Zora Quillfeather"}})
            out.append(Generation(text=text, latency=0.01, prompt_tokens=10, completion_tokens=5))
        return out


def test_model_and_hybrid_predictors_on_a_fake_backend(fitted):
    from specdecode.speculate.predictors import HybridPredictor, ModelPredictor

    tables, _ = fitted
    record = TraceRecord(
        id="x",
        question="According to Wikipedia, in what year was the poet Zora Quillfeather born?",
        trace=[TraceStep(action=ToolCall(tool_name="wikipedia", arguments={"title": "Zora Quillfeather"}))],
    )
    context = contexts_of(record, REG)[0]
    backend = FakeBackend()
    model = ModelPredictor(backend, adapter=True)
    assert model.name == "lora"
    [pred] = model.predict_many([context], k=3)
    # greedy first, then the sampled guesses deduplicated by frequency
    assert [c.tool_name for c in pred.calls] == ["search", "search", "search"]
    assert pred.calls[0].arguments == {"title": "Zora Quillfeather"}
    assert {c.arguments.get("query") for c in pred.calls[1:]} == {"a", "b"}
    hybrid = HybridPredictor(tables["pattern"], ModelPredictor(FakeBackend(), adapter=True))
    [pred] = hybrid.predict_many([context], k=2)
    # the table names the tools; the model writes the arguments (prompted with that tool only)
    assert [c.tool_name for c in pred.calls] == tables["pattern"].ranked_tools(context)[:2]
    assert all(c.arguments == {"title": "Zora Quillfeather"} for c in pred.calls)
    # one generation per step (`--samples 0`): the model writes the top tool's arguments only and
    # the table's own calls fill the other candidates
    backend = FakeBackend()
    original = backend.generate

    def with_logprob(requests, config, adapter):  # a backend that reports its answers' log-probability
        return [dataclasses.replace(g, logprob=-0.5) for g in original(requests, config, adapter)]

    backend.generate = with_logprob
    one = HybridPredictor(tables["pattern"], ModelPredictor(backend, adapter=True), write_k=1)
    [pred] = one.predict_many([context], k=3)
    assert backend.calls == 1
    top_tool, p_tool = tables["pattern"].tools.ranked(context)[0]
    assert pred.calls[0].tool_name == top_tool
    assert pred.calls[0].arguments == {"title": "Zora Quillfeather"}
    scored = [(c, p) for c, p in tables["pattern"].scored(context, 3) if c != pred.calls[0]][:2]
    assert pred.calls[1:] == [c for c, _ in scored]
    # one probability per call: the table's tool share x the model's own, then the table's own
    assert pred.probs == pytest.approx([p_tool * math.exp(-0.5), *(p for _, p in scored)])
    assert one.describe() != hybrid.describe()  # another setting: its replay rows are not reused
