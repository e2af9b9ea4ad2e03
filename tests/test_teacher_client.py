"""The client layer with the real google-genai and openai SDKs against a loopback server:
retries (429 with Retry-After, 500, timeouts, garbage bodies), no SDK retries, budget, cache,
bounded concurrency, JSON mode on the wire, and keys that never leak."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from fake_llm_server import FakeLLMServer, FakeRequest
from specdecode.errors import InputError
from specdecode.teacher import CallFailed, ClientConfig, GenerationSettings, LLMClient, RetryPolicy
from specdecode.teacher.jsonfix import ReplyParseError, parse_reply

KEY = "sk-fake-TEACHER-0123456789abcdef"
PROVIDERS = ("gemini", "openai")
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Question: ping?"}]
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def echo(request: FakeRequest) -> str:
    return json.dumps({"answer": request.user, "system": request.system})


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)


def make_client(
    provider: str, server: FakeLLMServer, tmp_path: Path | None = None, sleep=None, **overrides
) -> LLMClient:
    url = server.gemini_url if provider == "gemini" else server.openai_url
    settings = {
        "timeout": 0.4,
        "retry": RetryPolicy(max_attempts=5, base_delay=0.001, max_delay=0.01),
        "cache": tmp_path is not None,
        "cache_path": tmp_path / "cache.sqlite" if tmp_path else None,
        **overrides,
    }
    kwargs = {"sleep": sleep} if sleep else {}
    return LLMClient(ClientConfig(provider, "model-x", base_url=url, **settings), **kwargs)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_retries_every_transient_fault_then_answers(provider: str) -> None:
    waits: list[float] = []
    with FakeLLMServer(KEY, echo, script=["429", "500", "hang", "garbage"], hang_seconds=1.0) as server:
        client = make_client(provider, server, sleep=waits.append)
        completion = client.complete(MESSAGES, SCHEMA)
    assert json.loads(completion.text) == {"answer": "Question: ping?", "system": "Be brief."}
    assert completion.attempts == 5 and server.calls == 5  # one request per attempt: SDK retries are off
    stats = client.stats()
    assert stats["calls"] == 5 and stats["retries"] == 4
    assert stats["failed_attempts"] == {"429": 1, "500": 1, "timeout": 1, "malformed": 1}
    assert len(waits) == 4
    assert all(r.auth_ok for r in server.requests)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_retry_after_is_honoured(provider: str) -> None:
    waits: list[float] = []
    with FakeLLMServer(KEY, echo, script=["429"], retry_after="7") as server:
        client = make_client(provider, server, sleep=waits.append)
        client.complete(MESSAGES)
    assert waits and waits[0] >= 7.0  # the backoff alone would be ~0.001 s


def test_backoff_grows_exponentially_with_jitter() -> None:
    import random

    policy = RetryPolicy(base_delay=1.0, max_delay=10.0)
    rng = random.Random(0)
    delays = [policy.delay(n, None, rng) for n in range(1, 7)]
    for n, d in enumerate(delays, start=1):
        cap = min(10.0, 2 ** (n - 1))
        assert cap / 2 <= d <= cap
    assert policy.delay(1, 500.0, rng) == policy.max_retry_after


@pytest.mark.parametrize("provider", PROVIDERS)
def test_permanent_errors_are_not_retried(provider: str) -> None:
    with FakeLLMServer(KEY, echo, script=["400"]) as server:
        client = make_client(provider, server)
        with pytest.raises(CallFailed) as info:
            client.complete(MESSAGES)
    assert info.value.kind == "permanent" and "400" in info.value.message
    assert server.calls == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_gives_up_after_max_attempts_with_an_error(provider: str) -> None:
    with FakeLLMServer(KEY, echo, script=["500"] * 10) as server:
        client = make_client(provider, server, retry=RetryPolicy(max_attempts=3, base_delay=0.001))
        with pytest.raises(CallFailed) as info:
            client.complete(MESSAGES)
    assert info.value.kind == "transient" and info.value.attempts == 3
    assert server.calls == 3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_budget_counts_every_attempt(provider: str) -> None:
    with FakeLLMServer(KEY, echo, script=["500", "500", None]) as server:
        client = make_client(provider, server, max_calls=2)
        with pytest.raises(CallFailed) as info:
            client.complete(MESSAGES)
        assert info.value.kind == "budget"
        with pytest.raises(CallFailed):
            client.complete([{"role": "user", "content": "another"}])
    assert server.calls == 2 and client.stats()["calls"] == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cache_hits_make_no_calls_and_key_covers_settings(provider: str, tmp_path: Path) -> None:
    with FakeLLMServer(KEY, echo) as server:
        first = make_client(provider, server, tmp_path)
        assert not first.complete(MESSAGES, SCHEMA).cached
        first.close()
        again = make_client(provider, server, tmp_path)  # a new process would see the same file
        assert again.complete(MESSAGES, SCHEMA).cached
        assert server.calls == 1
        assert again.stats()["cache"] == {"enabled": True, "hits": 1, "misses": 0}
        # Anything that changes the reply changes the key: schema, settings, model.
        again.complete(MESSAGES, None)
        hotter = make_client(provider, server, tmp_path, generation=GenerationSettings(temperature=0.7))
        hotter.complete(MESSAGES, SCHEMA)
        other = make_client(provider, server, tmp_path)
        other.config.model = "model-y"
        other.complete(MESSAGES, SCHEMA)
    assert server.calls == 4
    assert KEY.encode() not in (tmp_path / "cache.sqlite").read_bytes()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_json_mode_and_generation_settings_on_the_wire(provider: str) -> None:
    with FakeLLMServer(KEY, echo) as server:
        gen = GenerationSettings(temperature=0.3, seed=11, max_tokens=77, json_mode="schema")
        make_client(provider, server, generation=gen).complete(MESSAGES, SCHEMA)
        make_client(provider, server, generation=GenerationSettings(json_mode="object")).complete(
            MESSAGES, SCHEMA
        )
        make_client(
            provider, server, generation=GenerationSettings(temperature=None, json_mode="off")
        ).complete(MESSAGES, SCHEMA)
    schema_body, object_body, off_body = (r.body for r in server.requests)
    if provider == "openai":
        assert schema_body["response_format"]["json_schema"]["schema"] == SCHEMA
        assert (schema_body["temperature"], schema_body["seed"], schema_body["max_tokens"]) == (0.3, 11, 77)
        assert object_body["response_format"] == {"type": "json_object"}
        assert "response_format" not in off_body and "temperature" not in off_body
    else:
        config = schema_body["generationConfig"]
        assert config["responseJsonSchema"] == SCHEMA and config["responseMimeType"] == "application/json"
        assert (config["temperature"], config["seed"], config["maxOutputTokens"]) == (0.3, 11, 77)
        assert "responseJsonSchema" not in object_body["generationConfig"]
        assert "responseMimeType" not in off_body["generationConfig"]
        assert "temperature" not in off_body["generationConfig"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_concurrency_is_bounded(provider: str) -> None:
    with FakeLLMServer(KEY, echo, delay=0.05) as server:
        client = make_client(provider, server, concurrency=3)
        threads = [
            threading.Thread(target=client.complete, args=([{"role": "user", "content": f"q{i}"}],))
            for i in range(12)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert server.calls == 12
    assert 2 <= server.max_in_flight <= 3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_rejected_key_is_redacted_from_errors(provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "sk-wrong-KEY-THAT-MUST-NOT-LEAK-42"
    monkeypatch.setenv("GEMINI_API_KEY" if provider == "gemini" else "OPENAI_API_KEY", wrong)
    with FakeLLMServer(KEY, echo) as server:  # the server echoes the presented key in its 401
        client = make_client(provider, server)
        with pytest.raises(CallFailed) as info:
            client.complete(MESSAGES)
    assert "401" in info.value.message
    assert wrong not in info.value.message and wrong[:12] not in info.value.message
    assert "***" in info.value.message


def test_keys_only_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(InputError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        LLMClient(ClientConfig("gemini", "m", cache=False))
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    assert LLMClient(ClientConfig("gemini", "m", cache=False)).provider.name == "gemini"
    with pytest.raises(InputError, match="MY_TEACHER_KEY"):
        LLMClient(ClientConfig("openai", "m", api_key_env="MY_TEACHER_KEY", cache=False))
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(InputError, match="OPENAI_API_KEY"):
        LLMClient(ClientConfig("openai", "m", cache=False))
    # A local server needs no key.
    assert LLMClient(ClientConfig("openai", "m", base_url="http://127.0.0.1:9/v1", cache=False))
    with pytest.raises(InputError, match="unknown provider"):
        LLMClient(ClientConfig("anthropic", "m", cache=False))


@pytest.mark.parametrize(
    ("text", "expected", "repairs"),
    [
        ('{"a": 1}', {"a": 1}, []),
        ('```json\n{"a": [1, 2,],}\n```', {"a": [1, 2]}, ["code_fence", "trailing_commas"]),
        ('Sure! Here it is: {"a": "x, }"} Hope this helps.', {"a": "x, }"}, ["surrounding_text"]),
        ('{"a": "keeps , ] inside strings",\n}', {"a": "keeps , ] inside strings"}, ["trailing_commas"]),
    ],
)
def test_safe_json_repairs(text: str, expected: dict, repairs: list[str]) -> None:
    assert parse_reply(text) == (expected, repairs)


@pytest.mark.parametrize("text", ["", "no json here", '{"a": 1', "[1, 2]", "{'a': 1}"])
def test_unrepairable_replies_are_reported(text: str) -> None:
    with pytest.raises(ReplyParseError):
        parse_reply(text)
