"""LLM judges through the teacher client layer, against loopback servers: the pointwise rubric,
the pairwise order swap (visible in the results file), Cohen's κ against the deterministic
scorer in the compare summary, errors that become verdicts instead of crashes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from fake_llm_server import FakeLLMServer, FakeRequest
from fake_openai import FakeOpenAI
from specdecode.errors import InputError
from specdecode.evaluate.judges import JUDGES, DeterministicJudge, cohen_kappa, make_judge
from specdecode.evaluate.judges.agreement import winner_agreement
from specdecode.records import ToolCall

KEY = "sk-fake-JUDGE-abcdef0123456789"
MODEL_KEY = "sk-fake-MODEL-0123456789abcdef"


def _calls_after(marker: str, text: str) -> list[dict]:
    part = text.split(marker, 1)[1]
    found = re.search(r"Tool calls extracted from it: (\[.*?\])\n?", part)
    assert found, text
    return json.loads(found.group(1))


def _reference(text: str) -> list[dict]:
    found = re.search(r"Reference tool calls: (\[.*\])", text)
    assert found, text
    return json.loads(found.group(1))


def judge_reply(request: FakeRequest) -> str:
    """Pointwise: the rubric on tool names. Pairwise: right when the reference starts with
    ``search``; position-biased ("A" whatever the order) for ``wikipedia``; ``tie`` otherwise."""
    reference = [c["tool_name"] for c in _reference(request.user)]
    if "Answer A:" in request.user:
        if reference[:1] == ["wikipedia"]:
            return json.dumps({"winner": "A", "reason": "A came first"})
        if reference[:1] == ["search"]:
            a = [c["tool_name"] for c in _calls_after("Answer A:", request.user.split("Answer B:")[0])]
            return json.dumps({"winner": "A" if a[:1] == ["search"] else "B", "reason": "calls search first"})
        return json.dumps({"winner": "tie", "reason": "both miss"})
    names = [c["tool_name"] for c in _calls_after("Agent's answer:", request.user)]
    score = 1.0 if names == reference else (0.5 if set(names) & set(reference) else 0.0)
    return json.dumps({"score": score, "reason": f"names {names} vs {reference}"})


def test_cohen_kappa_known_values() -> None:
    a = list("yynnynyynn")
    b = list("ynnnynyyyn")
    assert cohen_kappa(a, b) == pytest.approx(0.6)  # p_o = 0.8, p_e = 0.5
    assert cohen_kappa(["x", "y"], ["y", "x"]) == pytest.approx(-1.0)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert cohen_kappa(["t", "t"], ["t", "t"]) is None  # undefined: chance agreement is 1
    assert cohen_kappa([], []) is None


def _row(winner: str, base_exact: int, lora_exact: int) -> dict:
    metrics = lambda e: {"first_call_exact": e, "first_call_name": e, "name_f1": e, "parse_ok": 1}  # noqa: E731
    return {"winner": winner, "base_metrics": metrics(base_exact), "lora_metrics": metrics(lora_exact)}


def test_winner_agreement_against_the_deterministic_scorer() -> None:
    rows = [_row("lora", 0, 1), _row("lora", 0, 1), _row("base", 1, 0), _row("tie", 0, 1)]
    rows += [_row("inconsistent", 1, 1), _row("error", 0, 1)]
    got = winner_agreement(rows)
    assert got["n"] == 5 and got["errors"] == 1
    assert got["confusion"]["lora"]["lora"] == 2 and got["confusion"]["tie"]["lora"] == 1
    assert got["confusion"]["inconsistent"]["tie"] == 1 and got["confusion"]["base"]["base"] == 1
    judge = ["lora", "lora", "base", "tie", "inconsistent"]
    reference = ["lora", "lora", "base", "lora", "tie"]
    assert got["kappa"] == pytest.approx(round(cohen_kappa(judge, reference), 4))
    assert got["observed_agreement"] == 0.6


def _example(gold: list[str], question: str = "Question: who?") -> SimpleNamespace:
    return SimpleNamespace(
        id="ex",
        request=SimpleNamespace(
            messages=[{"role": "system", "content": "tools"}, {"role": "user", "content": question}]
        ),
        gold=[ToolCall(tool_name=name, arguments={"q": name}) for name in gold],
    )


def _scored(names: list[str], exact: int) -> dict:
    calls = [{"tool_name": n, "arguments": {}} for n in names]
    metrics = {"first_call_exact": exact, "first_call_name": exact, "name_f1": float(exact), "parse_ok": 1}
    return {"pred_raw": json.dumps(calls), "pred_calls": calls, "metrics": metrics}


@pytest.fixture()
def judge_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("SPECDECODE_JUDGE_BACKOFF", "0.001")
    monkeypatch.setenv("SPECDECODE_LLM_CACHE", str(tmp_path / "judge-cache.sqlite"))
    return tmp_path


def test_pointwise_gemini_judge_rubric_retries_and_cache(judge_env: Path) -> None:
    with FakeLLMServer(KEY, judge_reply, script=["429", "garbage"]) as server:
        judge = make_judge("gemini", base_url=server.gemini_url, model="gemini-judge", timeout=5)
        assert judge.name == "gemini"
        verdict = judge.compare(
            _example(["search", "calculator"]), _scored([], 0), _scored(["search"], 0), "trace"
        )
        assert (verdict.base_score, verdict.lora_score, verdict.winner) == (0.0, 0.5, "lora")
        assert (
            verdict.extra["judge_lora_score"] == 0.5
            and "names ['search']" in verdict.extra["judge_lora_reason"]
        )
        assert verdict.reason.startswith("base 0.0:") and "| lora 0.5:" in verdict.reason
        assert server.calls == 4  # two answers, one 429 and one garbage body retried
        again = make_judge("gemini", base_url=server.gemini_url, model="gemini-judge")
        again.compare(_example(["search", "calculator"]), _scored([], 0), _scored(["search"], 0), "trace")
        assert server.calls == 4 and again.stats()["cache"]["hits"] == 2  # cached: no new calls
        assert {r.api for r in server.requests} == {"gemini"}
        assert server.requests[-1].body["generationConfig"]["responseJsonSchema"]["required"] == [
            "score",
            "reason",
        ]
    lora_metrics = {**_scored(["search"], 0)["metrics"], "name_f1": 0.5}
    row = {"winner": "lora", "base_score": 0.0, "lora_score": 0.5}
    rows = [{**row, "base_metrics": _scored([], 0)["metrics"], "lora_metrics": lora_metrics}]
    summary = judge.summarise(rows)
    assert summary["judge_score_agreement"]["kappa"] == 1.0  # 0.0 ↔ F1 0, 0.5 ↔ F1 0.5
    assert summary["judge_agreement"]["n"] == 1 and summary["judge_client"]["calls"] == 4


def test_judge_failures_become_error_verdicts(judge_env: Path) -> None:
    with FakeLLMServer(KEY, judge_reply, script=["500"] * 10) as server:
        judge = make_judge(
            "pairwise-openai", base_url=server.openai_url, model="j", max_calls=3, max_attempts=2
        )
        verdict = judge.compare(_example(["search"]), _scored([], 0), _scored(["search"], 1), "next-call")
    assert verdict.winner == "error" and verdict.reason.startswith("judge failed:")
    assert "error" in verdict.extra["judge_order_ab"] and "error" in verdict.extra["judge_order_ba"]
    assert server.calls == 3  # the budget holds across both orders


def test_make_judge_names_and_settings(judge_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_judge("deterministic"), DeterministicJudge)
    assert JUDGES == ("deterministic", "gemini", "openai", "pairwise-gemini", "pairwise-openai")
    with pytest.raises(InputError, match="unknown judge 'claude'"):
        make_judge("claude")
    with pytest.raises(InputError, match="unknown judge setting"):
        make_judge("openai", temprature=0.2)
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(InputError, match="GEMINI_API_KEY"):
        make_judge("pairwise-gemini")
    monkeypatch.setenv("SPECDECODE_JUDGE_MODEL", "from-env")
    assert make_judge("openai", cache=False).client.config.model == "from-env"
    assert make_judge("openai", model="from-arg", cache=False).client.config.model == "from-arg"


def _compare_env(tmp_path: Path) -> dict[str, str]:
    """Keys for the loopback model and judge servers, fast retries, a reply cache in tmp_path."""
    return {
        **os.environ,
        "MODEL_KEY": MODEL_KEY,
        "JUDGE_KEY": KEY,
        "SPECDECODE_JUDGE_BACKOFF": "0.001",
        "SPECDECODE_LLM_CACHE": str(tmp_path / "cache.sqlite"),
    }


def test_pairwise_judge_in_compare_order_swap_and_kappa(synth_split: Path, tmp_path: Path) -> None:
    """``specdecode compare --judge pairwise-openai`` end to end: the model and the judge are both
    loopback servers; the results file shows both orders, the summary κ."""
    out = tmp_path / "cmp.jsonl"
    env = _compare_env(tmp_path)
    with (
        FakeOpenAI(MODEL_KEY) as model,
        FakeLLMServer(KEY, judge_reply, script=["429", None, "500"]) as judge,
    ):
        proc = subprocess.run(
            [
                sys.executable, "-m", "specdecode", "compare", "--backend", "openai", "--base-url", model.url,
                "--base_model", "base", "--lora_dir", "speculator", "--api-key-env", "MODEL_KEY",
                "--test_file", str(synth_split / "test.jsonl"), "--output_file", str(out), "--limit", "12",
                "--mode", "trace", "--judge", "pairwise-openai", "--judge-base-url", judge.openai_url,
                "--judge_model", "judge-m", "--judge-api-key-env", "JUDGE_KEY",
            ],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        judge_calls = judge.calls
        judge_requests = list(judge.requests)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12 and judge_calls == 12 * 2 + 2  # two orders per row, two retried faults
    for row in rows:
        ab, ba = row["judge_order_ab"], row["judge_order_ba"]
        assert (ab["A"], ab["B"], ba["A"], ba["B"]) == ("base", "lora", "lora", "base")
        gold = row["gold_calls"][0]["tool_name"]
        if gold == "wikipedia":  # the position-biased case: "A" both times means base, then lora
            assert (ab["winner"], ba["winner"]) == ("A", "A") and (ab["means"], ba["means"]) == (
                "base",
                "lora",
            )
            assert row["winner"] == "inconsistent" and "orders disagree" in row["comparison_reason"]
        elif gold == "search":
            assert (ab["means"], ba["means"], row["winner"]) == ("lora", "lora", "lora")
        else:
            assert row["winner"] == "tie"
    winners = [r["winner"] for r in rows]
    assert "inconsistent" in winners and "lora" in winners
    # The judge really saw the swap: in one request the base answer is A, in the other B.
    first_a = [r.user.split("Answer A:")[1].split("Answer B:")[0] for r in judge_requests if r.fault is None]
    assert any("I am not sure." in a for a in first_a) and any('"search"' in a for a in first_a)

    summary = json.loads(out.with_suffix(".summary.json").read_text())
    agreement = summary["judge_agreement"]
    reference = [
        DeterministicJudge()
        .compare(None, {"metrics": r["base_metrics"]}, {"metrics": r["lora_metrics"]}, "trace")
        .winner
        for r in rows
    ]
    expected = cohen_kappa(winners, reference)
    assert agreement["kappa"] == (None if expected is None else pytest.approx(round(expected, 4)))
    assert "kappa" in agreement and agreement["n"] == 12
    assert sum(sum(col.values()) for col in agreement["confusion"].values()) == 12
    assert agreement["confusion"]["inconsistent"] and summary["winners"]["inconsistent"] == winners.count(
        "inconsistent"
    )
    assert summary["judge_order_consistency"] == round(1 - winners.count("inconsistent") / 12, 4)
    assert summary["judge_client"]["calls"] == judge_calls and summary["judge"] == "pairwise-openai"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes() and MODEL_KEY.encode() not in path.read_bytes()
    assert KEY not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("openai", "I would rather not say."),  # not JSON
        ("openai", json.dumps({"score": "high", "reason": "?"})),  # no numeric score
        ("pairwise-openai", json.dumps({"winner": "C", "reason": "?"})),  # no readable winner
    ],
)
def test_an_unusable_judge_reply_is_asked_again_not_replayed(judge_env: Path, name: str, bad: str) -> None:
    """A reply that gave an error verdict leaves the cache: the rerun asks the server again."""
    state = {"bad": True}

    def reply(request: FakeRequest) -> str:
        return bad if state["bad"] else judge_reply(request)

    args = (_example(["search"]), _scored([], 0), _scored(["search"], 1), "next-call")
    with FakeLLMServer(KEY, reply) as server:
        first = make_judge(name, base_url=server.openai_url, model="j").compare(*args)
        assert first.winner == "error" and server.calls == 2
        state["bad"] = False
        again = make_judge(name, base_url=server.openai_url, model="j")
        assert again.compare(*args).winner == "lora"
        assert server.calls == 4 and again.stats()["cache"]["hits"] == 0
        third = make_judge(name, base_url=server.openai_url, model="j")
        assert third.compare(*args).winner == "lora" and server.calls == 4  # good replies stay cached


def _compare_cli(model: FakeOpenAI, judge: FakeLLMServer, test_file: Path, out: Path, env: dict, *extra: str):
    return subprocess.run(
        [
            sys.executable, "-m", "specdecode", "compare", "--backend", "openai", "--base-url", model.url,
            "--base_model", "base", "--lora_dir", "speculator", "--api-key-env", "MODEL_KEY",
            "--test_file", str(test_file), "--output_file", str(out), "--limit", "4", "--mode", "trace",
            "--judge", "openai", "--judge-base-url", judge.openai_url, "--judge-api-key-env", "JUDGE_KEY",
            *extra,
        ],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def test_compare_resume_judges_error_rows_again_and_fingerprints_the_judge_model(
    synth_split: Path, tmp_path: Path
) -> None:
    """Rows whose verdict was an error (here: the judge's call budget ran out) are judged again on
    resume, from the kept answers; another --judge-model is a run with other settings."""
    out = tmp_path / "cmp.jsonl"
    env = _compare_env(tmp_path)
    test_file = synth_split / "test.jsonl"
    with FakeOpenAI(MODEL_KEY) as model, FakeLLMServer(KEY, judge_reply) as judge:
        first = _compare_cli(
            model,
            judge,
            test_file,
            out,
            {**env, "SPECDECODE_JUDGE_MAX_CALLS": "2"},
            "--judge_model",
            "judge-m",
        )
        assert first.returncode == 0, first.stderr
        before = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["winner"] == "error" for r in before] == [False, True, True, True]
        assert "budget" in before[1]["judge_base_error"]
        generated = len(model.requests)

        second = _compare_cli(model, judge, test_file, out, env, "--judge_model", "judge-m")
        assert second.returncode == 0, second.stderr
        assert len(model.requests) == generated  # nothing regenerated
        assert judge.calls == 2 + 3 * 2  # only the three error rows were judged again
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["id"] for r in rows] == [r["id"] for r in before] and rows[0] == before[0]
        for old, new in zip(before[1:], rows[1:]):
            assert new["winner"] != "error" and not any(k.endswith("_error") for k in new)
            assert (new["base_pred"], new["lora_pred"], new["run"]) == (
                old["base_pred"],
                old["lora_pred"],
                old["run"],
            )
            assert new["judge_lora_reason"] and new["judge_base_score"] == 0.0
        summary = json.loads(out.with_suffix(".summary.json").read_text())
        assert "error" not in summary["winners"] and summary["judge_agreement"]["errors"] == 0
        assert summary["fingerprint"]["judge_model"] == "judge-m"
        assert summary["fingerprint"]["judge_base_url"] == judge.openai_url

        # Another judge model into the same file: refused, the file untouched.
        kept = out.read_bytes()
        other = _compare_cli(model, judge, test_file, out, env, "--judge_model", "judge-other")
        assert other.returncode == 2 and "other settings" in other.stderr, other.stderr
        assert len(other.stderr.strip().splitlines()) == 1 and out.read_bytes() == kept
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes()
