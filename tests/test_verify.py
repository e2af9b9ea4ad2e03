"""``verify``: the trie of drafts scored in one pass over the cached prefix equals the model's own
log-likelihood of each draft; calibration is fitted on validation steps only; probabilities are
in [0, 1] and sorted."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from specdecode.data import synthesize
from specdecode.evaluate.metrics import same_call
from specdecode.records import ToolCall
from specdecode.registry import load_registry
from specdecode.speculate.calibration import (
    Calibration,
    fit_calibration,
    fit_logistic,
    fit_platt,
    reliability,
    sigmoid,
)
from specdecode.speculate.predictors import DraftScorer, PatternPredictor, VerifyPredictor, contexts_of

REG = load_registry("tools4")


@pytest.fixture(scope="module")
def tiny_backend(tiny_qwen3: Path):
    from specdecode.evaluate.backends.hf import HFBackend

    return HFBackend(str(tiny_qwen3))


def _reference(backend, scorer: DraftScorer, context, call: ToolCall) -> tuple[float, int]:
    """The slow way: the whole prompt + call text through the model, no cache, no trie."""
    import torch

    prompt = scorer.prompt_text(context)
    prompt_ids = scorer.encode(prompt)
    suffix = scorer.encode(scorer.call_suffix(context, call, prompt))
    ids = torch.tensor([prompt_ids + suffix])
    with torch.inference_mode():
        logits = backend.model(input_ids=ids).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)
    start = len(prompt_ids) - 1
    return float(sum(logprobs[start + j, t] for j, t in enumerate(suffix))), len(suffix)


@pytest.mark.parametrize("form", ["steps", "conversation"])
def test_tree_scores_over_the_cached_prefix_equal_the_models_own(tiny_backend, form: str) -> None:
    scorer = DraftScorer(tiny_backend, adapter=False, form=form)
    trace = next(t for t in synthesize(30, seed=4) if len(t.trace) >= 3)
    drafts = [
        ToolCall(tool_name="search", arguments={"query": "Lake Tasvel depth"}),
        ToolCall(tool_name="search", arguments={"query": "Lake Tasvel area"}),  # shares a long prefix
        ToolCall(tool_name="wikipedia", arguments={"title": "Tasvel"}),
        ToolCall(tool_name="calculator", arguments={"expression": "3 * 4"}),
    ]
    for context in contexts_of(trace, REG):  # steps in order: the cache is extended, then cropped
        got = scorer.score(context, drafts)
        for call, (score, n) in zip(drafts, got):
            ref, ref_n = _reference(tiny_backend, scorer, context, call)
            assert n == ref_n and score == pytest.approx(ref, abs=2e-3), (context.step, call.tool_name)
    assert scorer.prefilled_tokens < sum(
        len(scorer.encode(scorer.prompt_text(c))) for c in contexts_of(trace, REG)
    )
    # a shared token is computed once: fewer nodes than draft tokens
    assert scorer.scored_tokens < len(contexts_of(trace, REG)) * sum(n for _, n in got)


def test_calibration_is_fitted_on_validation_and_probabilities_are_sorted(tiny_backend) -> None:
    train, val, test = synthesize(40, seed=0), synthesize(8, seed=1), synthesize(4, seed=2)
    table = PatternPredictor.fit(train)
    verify = VerifyPredictor(table, DraftScorer(tiny_backend, adapter=False))
    before = verify.describe()["calibration"]
    contexts = [c for t in val for c in contexts_of(t, REG)]
    gold = [t.trace[c.step].action for t in val for c in contexts_of(t, REG)]
    report = verify.calibrate(contexts, gold, same_call)
    assert report["steps"] == len(contexts) and 0 <= report["ece"] <= 1
    assert verify.describe()["calibration"] != before  # fitted (a, b, normalise, steps)
    for prediction in verify.predict_many([c for t in test for c in contexts_of(t, REG)], k=3):
        assert all(0.0 <= p <= 1.0 for p in prediction.probs)
        assert prediction.probs == sorted(prediction.probs, reverse=True)
        assert len(prediction.calls) == len(prediction.probs) <= 3


def test_platt_and_reliability_by_hand() -> None:
    # a feature that separates the labels: a large positive slope
    xs = [-3.0, -2.5, -2.0, -0.2, -0.1, 0.0]
    ys = [False, False, False, True, True, True]
    a, _ = fit_platt(xs, ys)
    assert a > 1
    diagram = reliability([0.05, 0.15, 0.95, 0.95], [False, False, True, False])
    assert diagram["n"] == 4 and diagram["ece"] == pytest.approx((0.5 * 0.1) + 0.5 * abs(0.95 - 0.5))
    shares = Calibration().shares([(-1.0, 2), (-3.0, 4)])
    assert sum(shares) == pytest.approx(1) and shares[0] > shares[1]
    assert Calibration(normalise=True).shares([(-1.0, 2), (-3.0, 4)])[0] == pytest.approx(
        math.exp(-0.5) / (math.exp(-0.5) + math.exp(-0.75))
    )


def test_platt_fit_stays_finite_and_beats_the_base_rate() -> None:
    """The shape of real validation data: each step's top draft has a share near 1 (log q within
    0.05 of 0, right about a third of the time), the others far below and rarely right. Undamped
    Newton ran off to a slope of ~10^7 there (every probability 0, a log-loss worse than knowing
    nothing); the fit must keep a finite slope and beat the constant base rate."""
    rng = random.Random(1)
    xs = [-rng.random() * 0.05 for _ in range(60)] + [-rng.uniform(1, 27.6) for _ in range(700)]
    ys = [rng.random() < 0.35 for _ in range(60)] + [rng.random() < 0.01 for _ in range(700)]
    a, b = fit_platt(xs, ys)
    assert 0 < a < 10

    def log_loss(probs: list[float]) -> float:
        return -sum(math.log(p if y else 1 - p) for p, y in zip(probs, ys)) / len(ys)

    base = sum(ys) / len(ys)
    fitted = [min(max(sigmoid(a * x + b), 1e-12), 1 - 1e-12) for x in xs]
    assert log_loss(fitted) < log_loss([base] * len(ys))
    assert sum(fitted[:60]) / 60 > sum(fitted[60:]) / 700  # top drafts more likely right


def test_logistic_fit_recovers_known_weights() -> None:
    """Labels drawn from sigmoid(2 x - 1 y + 0.5): the fit finds those weights."""
    rng = random.Random(3)
    xs = [rng.gauss(0, 1) for _ in range(4000)]
    ys = [rng.gauss(0, 1) for _ in range(4000)]
    labels = [rng.random() < sigmoid(2 * x - y + 0.5) for x, y in zip(xs, ys)]
    (wx, wy), b = fit_logistic([xs, ys], labels)
    assert wx == pytest.approx(2, abs=0.25) and wy == pytest.approx(-1, abs=0.2)
    assert b == pytest.approx(0.5, abs=0.2)


def _steps(rng: random.Random, model_knows: bool, table_knows: bool, n: int = 120) -> list:
    """Validation steps of 6 drafts, one of them right; the model's scores and the table's priors
    each either favour the right draft or are noise."""
    steps = []
    for _ in range(n):
        right = rng.randrange(6)
        scores = [(rng.gauss(-20, 3) + (8 if model_knows and i == right else 0), 12) for i in range(6)]
        priors = [rng.uniform(0.01, 0.2) * (4 if table_knows and i == right else 1) for i in range(6)]
        steps.append((scores, priors, [i == right for i in range(6)]))
    return steps


def _hit_at_1(calibration: Calibration, steps: list) -> float:
    hits = 0
    for scores, priors, labels in steps:
        probs = calibration.probabilities(scores, priors)
        hits += labels[max(range(len(probs)), key=probs.__getitem__)]
    return hits / len(steps)


def test_calibration_leans_on_the_table_where_the_model_knows_nothing() -> None:
    """Fitted on validation steps, then judged on fresh ones: with an uninformative model the
    table's prior carries the ranking; with an informative model and a noisy table, the model's."""
    rng = random.Random(5)
    fitted = fit_calibration(_steps(rng, model_knows=False, table_knows=True))
    assert fitted.prior > 0.5 and abs(fitted.a) < fitted.prior
    assert _hit_at_1(fitted, _steps(rng, False, True)) > 0.5  # chance: 1/6
    assert _hit_at_1(Calibration(), _steps(rng, False, True)) < 0.35  # the model's scores alone
    fitted = fit_calibration(_steps(rng, model_knows=True, table_knows=False))
    assert fitted.a > 0.5 and abs(fitted.prior) < fitted.a
    assert _hit_at_1(fitted, _steps(rng, True, False)) > 0.9
    probs = fitted.probabilities(*_steps(rng, True, False, n=1)[0][:2])
    assert all(0 <= p <= 1 for p in probs)


def test_no_fitted_weight_is_negative() -> None:
    """A table that points away from the right draft gets no weight (not a negative one, which
    would lift every call the table never proposed); the model's scores carry the ranking."""
    rng = random.Random(7)
    steps = []
    for scores, priors, labels in _steps(rng, model_knows=True, table_knows=False, n=150):
        priors = [p * (0.25 if right else 1) for p, right in zip(priors, labels)]  # misleading table
        steps.append((scores, priors, labels))
    assert (
        fit_logistic(
            [
                [x for s in steps for x, _ in Calibration().features(*s[:2])],
                [y for s in steps for _, y in Calibration().features(*s[:2])],
            ],
            [label for s in steps for label in s[2]],
        )[0][1]
        < 0
    )  # unconstrained: negative
    fitted = fit_calibration(steps)
    assert fitted.prior == 0.0 and fitted.a > 0.5
    uninformative = _steps(rng, model_knows=False, table_knows=False, n=0)
    assert fit_calibration(uninformative) == Calibration(a=0.0, prior=1.0)  # nothing to fit: the table


def _table_vs_model(repeats: int) -> list:
    """Blocks of 12 steps of two drafts: the table's prior favours the right draft on 9, the
    model's scores on 11 (2 more than the table, never fewer)."""
    steps = []
    for _ in range(repeats):
        for i in range(12):
            right = i % 2
            table_right, model_right = i < 9, i < 11
            priors = [0.3, 0.3]
            priors[right if table_right else 1 - right] = 0.6
            scores = [(-30.0 + (i % 3), 10), (-30.0 + (i % 3), 10)]
            scores[right if model_right else 1 - right] = (-12.0 - (i % 4), 10)
            steps.append((scores, priors, [d == right for d in range(2)]))
    return steps


def test_the_model_earns_its_place_only_with_significantly_more_validation_hits() -> None:
    """The model's scores put the right draft first on 2 more of 12 validation steps than the
    table's ranking (2 wins, 0 losses, McNemar p = 0.5): the table's ranking is kept, with no
    model weight. On four times the steps (8 wins, p = 0.008) the model's scores are used.
    Either way the comparison is recorded."""
    few = fit_calibration(_table_vs_model(1))
    gate = few.versus_table
    assert (gate["wins"], gate["losses"], gate["model_chosen"]) == (2, 0, False)
    assert gate["mcnemar_p"] == pytest.approx(0.5)
    assert few.a == 0.0 and few.prior == 1.0 and not few.uses_model
    assert _hit_at_1(few, _table_vs_model(1)) == pytest.approx(9 / 12)  # the table's ranking
    many = fit_calibration(_table_vs_model(4))
    assert many.uses_model and _hit_at_1(many, _table_vs_model(4)) == pytest.approx(11 / 12)
    gate = many.versus_table
    assert (gate["wins"], gate["losses"], gate["model_chosen"]) == (8, 0, True) and gate["mcnemar_p"] < 0.01
    assert fit_calibration(_table_vs_model(4), gate=1e-30).uses_model is False  # an impossible gate


def test_verify_that_keeps_the_table_answers_as_the_table_without_the_model(
    tiny_backend, monkeypatch
) -> None:
    """Where validation kept the table, ``verify`` ranks its drafts by the pattern table's own
    probabilities (the ones ``pattern`` gives the same calls), and the model is never called."""
    table = PatternPredictor.fit(synthesize(40, seed=0))
    verify = VerifyPredictor(table, DraftScorer(tiny_backend, adapter=False))
    verify.calibration = Calibration(a=0.0, prior=1.0)

    def forbidden(*args, **kwargs):
        raise AssertionError("the model was called")

    monkeypatch.setattr(verify.scorer, "score", forbidden)
    monkeypatch.setattr(tiny_backend.model, "forward", forbidden)
    contexts = [c for t in synthesize(3, seed=2) for c in contexts_of(t, REG)]
    for context, prediction in zip(contexts, verify.predict_many(contexts, k=3)):
        assert prediction.probs == sorted(prediction.probs, reverse=True)
        assert len(prediction.calls) == min(3, len(verify.valid_drafts(context)[0]))
        tables = {(call.tool_name, str(call.arguments)): p for call, p in table.scored(context, 32)}
        for call, p in zip(prediction.calls, prediction.probs):
            assert tables[(call.tool_name, str(call.arguments))] == pytest.approx(p, abs=1e-12)
    assert len(verify.measure_latency(contexts[:3])) == 3


def test_generation_is_kept_only_where_it_adds_hits_on_validation(tiny_backend, monkeypatch) -> None:
    """Every validation step asks for a generated call (``generate_below`` > 1); the gold calls are
    the model's own, which no draft matches, so calibrating keeps the table and generates nothing.
    Under the table's ranking the generated calls never reach the top, so generation is switched
    off; under a calibration that ranks them first (a negative prior weight, set by hand) they are
    the hits and generation is kept."""
    from specdecode.speculate.predictors import ModelPredictor

    train, val, test = synthesize(40, seed=0), synthesize(3, seed=1), synthesize(2, seed=2)
    generator = ModelPredictor(
        tiny_backend,
        adapter=False,
        constrained=True,
        batch_size=1,
        max_new_tokens=64,
        samples=0,
        sequential=True,
    )
    verify = VerifyPredictor(
        PatternPredictor.fit(train), DraftScorer(tiny_backend, adapter=False), generator, generate_below=1.01
    )
    made_at = [(c, generator.predict(c)) for t in val for c in contexts_of(t, REG)]
    contexts, made = [c for c, m in made_at if m], [m[0] for _, m in made_at if m]  # gold: the model's own
    drafts = [verify.valid_drafts(c)[0] for c in contexts]
    assert sum(m not in d for m, d in zip(made, drafts)) >= 3
    assert generator.first_calls(contexts, 16) == made  # validation generates in batches: same calls
    from specdecode.speculate.predictors import model as model_module

    monkeypatch.setattr(model_module, "SEQUENTIAL_PROMPT_TOKENS", 1)  # "long" prompts: one at a time
    reused = tiny_backend.reused_tokens
    assert generator.first_calls(contexts, 16) == made and tiny_backend.reused_tokens > reused
    monkeypatch.undo()
    report = verify.calibrate(contexts, made, same_call)  # no draft is ever right: the table is kept
    assert report["generation"] == {
        "steps": 0, "hits_with": 0, "hits_without": 0, "kept": False, "table_kept": True
    }  # fmt: skip
    assert verify.calibration.generate is False and not verify.calibration.uses_model
    verify.predict_many([c for t in test for c in contexts_of(t, REG)], k=3)
    assert verify.generated == 0
    verify.scorer.reset()
    scored = [(verify.scorer.score(c, d), verify.valid_drafts(c)[1], None) for c, d in zip(contexts, drafts)]
    verify.calibration = Calibration(a=0.0, prior=1.0)  # the table's ranking: generated calls last
    check = verify.validate_generation(contexts, made, same_call, drafts, scored)
    assert check["steps"] == len(contexts) and check["hits_with"] <= check["hits_without"]
    assert check["kept"] is False
    verify.calibration = Calibration(a=0.0, prior=-1.0)  # by hand: generated calls first
    check = verify.validate_generation(contexts, made, same_call, drafts, scored)
    assert check["kept"] is True and check["hits_with"] >= 3 > check["hits_without"]


def test_a_stored_calibration_is_reused_until_the_fit_changes(tiny_backend, tmp_path, monkeypatch) -> None:
    """replay keeps a fit in calibration.json; a fit made by an older fit_platt is made again."""
    from specdecode.speculate import calibration
    from specdecode.speculate.replay import ReplaySettings, calibrate

    val, table, fits = synthesize(3, seed=1), PatternPredictor.fit(synthesize(40, seed=0)), []

    def fresh() -> dict:  # a new process's predictor: not yet calibrated
        verify = VerifyPredictor(table, DraftScorer(tiny_backend, adapter=False))
        real = verify.calibrate
        monkeypatch.setattr(verify, "calibrate", lambda *a: fits.append(1) or real(*a))
        return {"verify": verify}

    path = tmp_path / "calibration.json"
    monkeypatch.setattr(calibration, "FIT_VERSION", -1)
    first = calibrate(fresh(), val, REG, ReplaySettings(), path)
    again = fresh()
    assert calibrate(again, val, REG, ReplaySettings(), path) == first and len(fits) == 1
    loaded = again["verify"].calibration  # the stored fit, loaded into a fresh predictor
    assert loaded.steps == first["verify"]["steps"] > 0 and loaded.a == first["verify"]["a"]
    monkeypatch.setattr(calibration, "FIT_VERSION", -2)
    calibrate(fresh(), val, REG, ReplaySettings(), path)
    assert len(fits) == 2


def test_hybrid_recalls_the_models_answer_where_it_chose_the_tables_tool(tiny_backend) -> None:
    """Constrained greedy decoding over one tool writes what decoding over all tools wrote when
    that tool was chosen: hybrid takes those answers from the backend (``recall``) instead of
    decoding again, with the same calls and the same argument probabilities as decoding them."""
    from specdecode.speculate.predictors import HybridPredictor, ModelPredictor

    table = PatternPredictor.fit(synthesize(40, seed=0))
    contexts = [c for t in synthesize(8, seed=5) for c in contexts_of(t, REG)]
    model = ModelPredictor(
        tiny_backend, adapter=False, constrained=True, batch_size=8, max_new_tokens=48, samples=0
    )
    answers = model.predict_many(contexts, 1)  # the `base`/`lora` predictor, replayed first
    hybrid = HybridPredictor(table, model, write_k=1)
    chose_top = sum(
        bool(a.calls) and a.calls[0].tool_name == table.ranked_tools(c)[0] for c, a in zip(contexts, answers)
    )
    recalled = hybrid.predict_many(contexts, 3)
    assert hybrid.recalled == chose_top > 0
    tiny_backend._greedy.clear()  # nothing to recall: every answer decoded over the tool's schema
    hybrid.recalled = 0
    decoded = hybrid.predict_many(contexts, 3)
    assert hybrid.recalled == 0
    assert [p.calls for p in recalled] == [p.calls for p in decoded]
    for got, ref in zip(recalled, decoded):
        assert got.probs == pytest.approx(ref.probs, rel=1e-3)
